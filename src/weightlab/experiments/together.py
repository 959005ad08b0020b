"""Several runs trained together where they can be (`prove`'s seeds and controls, `compare`'s variants).

configs -> groups that share one compiled program -> packs (a seed's variants, trained as branches)
        -> data.load once -> models.build -> fused_jax.fit_packed -> finish, run by run
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np

from weightlab.config import RunConfig, is_keras_file
from weightlab.experiments.ahead import early_scores, finish_steps, preparing
from weightlab.experiments.finish import finish, test_inputs
from weightlab.experiments.record import training_path_reason
from weightlab.experiments.run import keras_and_data, prepare, run, snapshot_store
from weightlab.store import Run, RunWriter, new_run_id


def run_many(
    configs: list[RunConfig],
    *,
    out: str | Path = "runs",
    data_dir: str | Path | None = None,
    report: bool = False,
    datasets: dict | None = None,
    progress=None,
    landscape: bool = True,
) -> list[Run]:
    """Several runs, trained together where they can be, each stored as `run` would store it.

    On the fused JAX path, runs that differ only in seed and labels (a proof's seeds and
    controls) train in one vmapped program, and runs of one seed that differ only in their
    hidden width (a comparison's variants) see the same batches and train as branches of one
    network; so N runs cost far less than N times one. Any other run trains on its own. Each
    run's initialisation, data order and numbers are its own, as if it had run alone (to float
    rounding). ``datasets`` holds datasets the caller has loaded already, by name (so their
    prepared arrays are shared, not made again). ``progress(steps_done, steps_total, logs)`` is
    called after every chunk of steps (a `signals.StopFlag.guard` stops the training there).
    """
    configs = [config.resolved() for config in configs]
    stored: dict[int, Run] = {}
    datasets = dict(datasets or {})  # loaded once: every group then shares the prepared arrays
    for packs in _trained_together(configs):
        first = configs[packs[0][0]]
        alone = len(packs) == 1 and len(packs[0]) == 1
        # A saved model may hold state the fused loop does not drive, and a convnet may train faster on
        # model.fit (`fused_program.slower_than_fit`): `run` decides for them, one by one.
        by_one = is_keras_file(first.model) or (first.model == "cnn" and first.training_path == "auto")
        if alone or first.backend != "jax" or first.training_path == "keras.fit" or by_one:
            for index in (index for pack in packs for index in pack):
                stored[index] = run(
                    configs[index], out=out, data_dir=data_dir, report=report, progress=progress, landscape=landscape
                )
            continue
        keras, dataset = keras_and_data(first, data_dir, datasets)
        from weightlab.train import fused_jax

        with contextlib.ExitStack() as cleanup:
            # an unusable --out fails before training
            writers = {
                index: cleanup.enter_context(RunWriter(out, new_run_id(configs[index])))
                for pack in packs
                for index in pack
            }
            built, labels, orders = [], [], []  # per pack: its models, their labels, each model's data order
            for pack in packs:
                built.append([])
                orders.append([])
                for index in pack:
                    model, x_train, y_train, drawn = prepare(keras, configs[index], dataset)
                    built[-1].append(model)
                    orders[-1].append(drawn)
                labels.append(y_train)
            sinks = [
                [snapshot_store(writers[index], model, len(x_train), first) for index, model in zip(pack, pack_models)]
                for pack, pack_models in zip(packs, built)
            ]
            # The finish's programs made ready while the runs train, one per architecture (a pack's models),
            # and their snapshots scored. One device copy of the test set for every run's evaluations.
            x_test, x_test_device = test_inputs(dataset, built[0][0])
            early = early_scores(
                [model for pack in built for model in pack],
                [sink for pack_sinks in sinks for sink in pack_sinks],
                first,
                dataset,
                x_test,
                x_test_device,
            )
            steps = finish_steps(built[0], first, dataset, landscape=landscape, report=report)
            hook = cleanup.enter_context(preparing(progress, steps, early))
            if all(
                np.array_equal(a, b)
                for pack_orders in orders
                for other in pack_orders[1:]
                for a, b in zip(pack_orders[0], other)
            ):
                fitted = fused_jax.fit_packed(
                    built, x_train, labels, first, [pack_orders[0] for pack_orders in orders], hook, sinks=sinks
                )
            else:  # building a model moved numpy's generator (not Keras 3.15's way): each width alone
                columns = [
                    fused_jax.fit_many(
                        [pack[k] for pack in built],
                        x_train,
                        labels,
                        first,
                        [pack_orders[k] for pack_orders in orders],
                        hook,
                        sinks=[pack_sinks[k] for pack_sinks in sinks],
                    )
                    for k in range(len(packs[0]))
                ]
                fitted = [list(row) for row in zip(*columns)]
            trained = [
                (index, model, result)
                for pack, pack_models, pack_results in zip(packs, built, fitted)
                for index, model, result in zip(pack, pack_models, pack_results)
            ]
            for place, (index, model, result) in enumerate(trained):  # places as in the early scores
                reason = training_path_reason(model, configs[index], fused_jax.TRAINING_PATH)
                stored[index] = finish(
                    keras,
                    writers[index],
                    configs[index],
                    dataset,
                    model,
                    result,
                    report,
                    reason,
                    x_test=x_test,
                    x_test_device=x_test_device,
                    with_landscape=landscape,
                    early=early.of(place),
                )
    return [stored[i] for i in range(len(configs))]


def _trained_together(configs: list[RunConfig]) -> list[list[list[int]]]:
    """Which configs train in one program: a list of groups, each a list of packs of config indices.

    A pack is one run of the program: configs of one seed and labels that differ only in the
    widths of ``hidden``, not their number (they draw the same data order). A group's packs differ only in seed and labels.
    Variants are packed only where every width has the same seeds and labels in the same order.
    """

    def key(config: RunConfig, **ignored) -> str:
        return json.dumps(dataclasses.replace(config, **ignored).to_dict(), sort_keys=True)

    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(key(config, seed=0, shuffle_labels=False), []).append(index)
    families: dict[str, list[list[int]]] = {}
    for members in groups.values():
        # Branches differ in width only: a variant of another depth has other variables and trains apart.
        depth_only = (1,) * len(configs[members[0]].widths)
        families.setdefault(key(configs[members[0]], seed=0, shuffle_labels=False, hidden=depth_only), []).append(
            members
        )
    together = []
    for family in families.values():
        runs = [[(configs[i].seed, configs[i].shuffle_labels) for i in members] for members in family]
        if len(family) > 1 and all(run == runs[0] for run in runs):
            together.append([list(pack) for pack in zip(*family)])
        else:
            together.extend([[index] for index in members] for members in family)
    return together
