"""`weightlab run`: the tutorial's experiment, measured and stored.

config -> data.load -> models.build -> evaluate (before) -> fit with WeightTracker
       -> evaluate (after) -> analysis -> RunWriter -> Run
"""

from __future__ import annotations

import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from weightlab import data, models
from weightlab.backend import keras_for, set_random_seed
from weightlab.bounds import model_size, require_fits
from weightlab.config import RunConfig
from weightlab.errors import ConfigError
from weightlab.experiments.ahead import early_scores, finish_steps, preparing
from weightlab.experiments.finish import finish, test_inputs
from weightlab.experiments.record import input_digests, training_path_reason
from weightlab.store import FORMAT_VERSION, Run, RunWriter, new_run_id


def run(
    config: RunConfig | None = None,
    *,
    out: str | Path = "runs",
    data_dir: str | Path | None = None,
    progress=None,
    report: bool = True,
    run_id: str | None = None,
    resume: str | Path | None = None,
    landscape: bool = True,
    **overrides,
) -> Run:
    """Train the tutorial's model as ``config`` (plus ``overrides``) says and store everything in a run directory.

    ``progress(steps_done, steps_total, epoch_logs_or_None)`` is called during training;
    ``report=False`` leaves out report.html (`weightlab report` renders it later); ``landscape=False``
    leaves out landscape.npz (a comparison draws none: ≈0.45 s a run saved); ``run_id``
    names the directory (default: time, config and a random suffix). ``resume`` names an
    interrupted run's hidden ``.incomplete-<id>`` directory to continue from its last epoch;
    its own config is used.
    Returns the stored `Run`.

    A checkpoint is written at each epoch's end (on every path); a run interrupted by Ctrl-C
    keeps its hidden directory with it (one killed outright keeps it too), ready for ``resume``.
    """
    saved = orders = None
    if resume is not None:
        config, out, run_id, saved, orders, recorded = _resumable(Path(resume))
    else:
        config = dataclasses.replace(config or RunConfig(), **overrides).resolved()
    keras, dataset = keras_and_data(config, data_dir)
    digests = input_digests(config, dataset)
    if resume is not None:
        _check_same_inputs(Path(resume), recorded, digests)
    with RunWriter(out, run_id or new_run_id(config), adopt=resume is not None) as writer:
        writer.write_json("config.json", {"format_version": FORMAT_VERSION, "config": config.to_dict(), **digests})
        model, x_train, y_train, drawn = prepare(keras, config, dataset)
        trainer = training_path(model, config)
        reason = training_path_reason(model, config, trainer.TRAINING_PATH)
        if saved is not None and saved["path"] != trainer.TRAINING_PATH:
            raise ConfigError(
                f"{resume} was trained on the {saved['path']} path and this setup trains on {trainer.TRAINING_PATH}; "
                "resume it with the backend it started on"
            )
        if saved is not None:  # the checkpoint must fit this model and data, or it is refused
            from weightlab.store.checkpoint import check_resumable
            from weightlab.train.keras_fit import steps_per_epoch

            samples = len(x_train)
            check_resumable(
                Path(resume),
                saved,
                orders,
                model,
                config.fit_samples(samples),
                steps_per_epoch(samples, config),
                config.epochs,
            )
        # The data orders are kept with each epoch's checkpoint, so a resumed run sees exactly
        # the batches it would have: it takes the saved ones, not those drawn again.
        orders = orders or drawn
        # Snapshots stream into the hidden directory's snapshots.h5 as they are taken; a resumed
        # run's file is cut back to the snapshots its checkpoint counts.
        store = snapshot_store(writer, model, len(x_train), config, saved["snapshot_steps"] if saved else None)
        if saved is not None:
            from weightlab.store.checkpoint import check_snapshots

            check_snapshots(Path(resume), saved, store)
        from weightlab.train import fused_jax

        # Its training leaves the interpreter free: the finish's programs are made ready meanwhile,
        # and the snapshots taken so far scored on the test set.
        steps = (
            finish_steps([model], config, dataset, landscape=landscape, report=report) if trainer is fused_jax else []
        )
        x_test, x_test_device = test_inputs(dataset, model)
        early = early_scores([model], [store], config, dataset, x_test, x_test_device) if steps else None
        with preparing(progress, steps, early) as hook:
            fitted = trainer.fit(
                model,
                x_train,
                y_train,
                config,
                hook,
                orders=orders,
                resume=saved,
                checkpoint=lambda state: writer.write_checkpoint(state, orders),
                snapshots=store,
            )
            return finish(
                keras,
                writer,
                config,
                dataset,
                model,
                fitted,
                report,
                reason,
                x_test=x_test,
                x_test_device=x_test_device,
                with_landscape=landscape,
                early=early.of(0) if early else None,
            )


def _check_same_inputs(directory: Path, recorded: dict, digests: dict[str, str]) -> None:
    """Refuse to resume a run whose model or data file changed since it started: its checkpoint belongs to the old ones."""
    for key, what in (("model_sha256", "--model file"), ("dataset_sha256", "--dataset file")):
        if key in recorded and recorded[key] != digests.get(key):
            raise ConfigError(
                f"{directory}: its {what} changed since the run started (SHA-256 {str(recorded[key])[:12]}…, now "
                f"{str(digests.get(key))[:12]}…); put the original back to resume, or start a new run"
            )


def _resumable(directory: Path):
    """(config, out, run_id, saved state, data orders, config.json as read) of an interrupted run's hidden directory."""
    from weightlab.store import read_checkpoint
    from weightlab.store.run import read_config_file

    if not directory.name.startswith(".incomplete-") or not (directory / "config.json").is_file():
        raise ConfigError(
            f"{directory} is not an interrupted run (a hidden .incomplete-<id> directory with config.json); pass one to --resume"
        )
    recorded = read_config_file(directory)
    config = RunConfig.from_dict(recorded["config"])
    saved, orders = read_checkpoint(directory, config.to_dict())
    return config, directory.parent, directory.name.removeprefix(".incomplete-"), saved, orders, recorded


def snapshot_store(writer: RunWriter, model, samples: int, config: RunConfig, resume_steps=None):
    """The run's snapshots.h5, open for its trainer to stream snapshots into."""
    from weightlab.store.checkpoint import RESTART
    from weightlab.store.files import reading
    from weightlab.train.keras_fit import steps_per_epoch
    from weightlab.train.tracker import variable_names

    # a resumed run reopens the hidden directory's file: any fault in it is one line, and the run is kept
    with reading(writer.temp / "snapshots.h5", RESTART) if resume_steps is not None else contextlib.nullcontext():
        return writer.snapshot_store(variable_names(model), steps_per_epoch(samples, config), resume_steps=resume_steps)


def keras_and_data(config: RunConfig, data_dir, loaded: dict | None = None):
    """(keras on the config's backend, the config's dataset, its inputs prepared): the data is read
    and made into float32 inputs while Keras is imported (≈0.5 s saved: numpy's casts and the
    kernel's page faults run without the interpreter lock, beside the import)."""
    with ThreadPoolExecutor(max_workers=1) as pool:  # reading the data needs no Keras
        loading = pool.submit(_load, config, data_dir, loaded)
        keras = keras_for(config.backend)
        return keras, loading.result()


def _load(config: RunConfig, data_dir, loaded: dict | None = None):
    """The config's dataset (from ``loaded``, by name, where given), checked against its batch size,
    with what every run derives from it made: its float32 inputs and the training pixels' activity."""
    dataset = loaded.get(config.dataset) if loaded is not None else None
    if dataset is None:
        dataset = data.load(config.dataset, data_dir=data_dir)
        if loaded is not None:
            loaded[config.dataset] = dataset
    fit_samples = config.fit_samples(len(dataset.x_train))
    if config.batch_size > fit_samples:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the {fit_samples} training samples; pass a smaller --batch-size"
        )
    inputs, classes = int(np.prod(dataset.x_train.shape[1:])), max(2, int(dataset.y_train.max()) + 1)
    require_fits(config, fit_samples, *model_size(config, inputs, classes))
    for split in ("train", "test"):
        dataset.inputs(split)
    dataset.activity(fit_samples)
    return dataset


def prepare(keras, config: RunConfig, dataset):
    """The seeded, freshly built model, the arrays it trains on, and each epoch's data order.

    The orders are drawn right after seeding and building, where `model.fit` would draw them.
    """
    from weightlab.train.keras_fit import draw_orders, to_inputs

    set_random_seed(keras, config.seed)
    model = models.build(config, keras, dataset.shape())
    orders = draw_orders(model, config.fit_samples(len(dataset.x_train)), config.epochs)
    inputs = to_inputs(dataset.inputs("train"), models.input_shape(model))
    return model, inputs, training_labels(dataset.y_train, config), orders


def training_labels(labels: np.ndarray, config: RunConfig) -> np.ndarray:
    """The labels training sees: as given, or for the shuffled-labels control permuted once.

    The permutation has its own generator, so the initialisation and data order stay those
    of the unshuffled run with the same seed: the two runs differ in the labels alone.
    """
    if not config.shuffle_labels:
        return labels
    return labels[np.random.default_rng([config.seed, 0x5EED]).permutation(len(labels))]


def training_path(model, config: RunConfig):
    """The module that trains ``model``: the fused JAX loop where it applies, else model.fit."""
    from weightlab.train import keras_fit

    if config.training_path == "keras.fit" or config.backend != "jax":
        return keras_fit
    from weightlab.train import fused_jax, fused_program

    if fused_jax.applies(model, config):
        faster_on_fit = config.training_path == "auto" and fused_program.slower_than_fit(model)
        return keras_fit if faster_on_fit else fused_jax
    if config.training_path == "fused-jax":
        raise ConfigError(
            "this model has non-trainable state the fused-jax path does not drive; pass --training-path keras.fit"
        )
    return keras_fit
