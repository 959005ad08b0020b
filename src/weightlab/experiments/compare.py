"""`weightlab compare`: variants of the experiment over the same seeds, side by side.

Each seed fixes the initialisation stream and the data order, so variant A and variant B at
seed s see the same batches in the same order: their difference is paired, and the paired
test is the right one.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import secrets
import typing
from pathlib import Path

from weightlab.analysis import aggregate
from weightlab.config import MAX_SEEDS, RunConfig, hidden_text, is_keras_file, parse_hidden, require_int
from weightlab.errors import ConfigError
from weightlab.experiments.together import run_many
from weightlab.store import FORMAT_VERSION, RunWriter, dumps

# Fields that name what is compared rather than how (seed is the repetition, not a variant).
_NOT_AXES = {"seed", "backend"}


@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    path: Path
    result: dict  # the contents of comparison.json


def parse_axis(spec: str) -> tuple[str, list]:
    """``"learning_rate=1e-3,3e-3"`` -> ("learning_rate", [0.001, 0.003]), typed as the config field is."""
    field, _, raw = spec.partition("=")
    field = field.strip().replace("-", "_")
    hints = typing.get_type_hints(RunConfig)
    if field not in hints or field in _NOT_AXES:
        choices = ", ".join(name for name in hints if name not in _NOT_AXES)
        raise ConfigError(f"cannot compare {field!r}: use FIELD=V1,V2 with a field among {choices}")
    if not raw:
        raise ConfigError(f"--compare {spec!r} lists no values: write {field}=V1,V2")
    kind = hints[field]
    values = []
    for text in raw.split(","):
        text = text.strip()
        try:
            if field == "hidden":  # one width, or several joined by x (128x64)
                values.append(parse_hidden(text))
            elif kind is bool:
                values.append(
                    {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text.lower()]
                )
            elif kind is int:
                values.append(int(text))
            elif kind is float:
                values.append(float(text))
            else:
                values.append(text)
        except (ValueError, KeyError) as error:
            raise ConfigError(
                f"--compare {field}: {text!r} is not a valid {getattr(kind, '__name__', kind)}"
            ) from error
    if len({str(value) for value in values}) != len(values):
        raise ConfigError(f"--compare {field} lists a value twice: {raw}")
    return field, values


def compare(
    config: RunConfig | None = None,
    *,
    axis: str = "hidden",
    values: list | None = None,
    seeds: int = 3,
    out: str | Path = "comparisons",
    data_dir=None,
    progress=None,
    report: bool = True,
    stop=None,
    **overrides,
) -> Comparison:
    """Every value of ``axis`` over the same ``seeds`` seeds; statistics per variant and paired differences."""
    require_int("seeds", seeds, 1, "--seeds", maximum=MAX_SEEDS)
    base = dataclasses.replace(config or RunConfig(), **overrides).resolved()
    values = list(values or [16, 64])
    if axis == "hidden" and is_keras_file(base.model):
        raise ConfigError(
            f"--model {base.model} brings its own layers, so every hidden width would train the same network; "
            "compare two files with --compare model=A.keras,B.keras, or another field"
        )
    variants = [dataclasses.replace(base, **{axis: value}) for value in values]  # validates every value now
    seed_list = [base.seed + i for i in range(seeds)]

    shown = "-".join(_value_text(axis, value) for value in values)
    comparison_id = f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{axis}-{shown}-{seeds}seeds-{secrets.token_hex(2)}"
    with RunWriter(out, comparison_id) as writer:
        if progress:
            progress(0, len(values), f"training {len(values)} variants × {seeds} seeds (each variant's seeds together)")
        # Each variant's seeds share an architecture and train in one program (run_many groups them).
        stored = run_many(
            [dataclasses.replace(variant, seed=seed) for variant in variants for seed in seed_list],
            out=writer.temp / "runs",
            data_dir=data_dir,
            progress=stop.guard() if stop else None,  # Ctrl-C and SIGTERM stop the training there
            landscape=False,  # a comparison draws no loss surface; each run's own page leaves it out
        )
        summaries = {
            index: [r.summary for r in stored[index * seeds : (index + 1) * seeds]] for index in range(len(values))
        }
        result = summarise(base, axis, values, seed_list, summaries)
        result["replay"] = replay_alignment(stored, len(values), seeds)
        writer.write_json("comparison.json", result)
        if report:
            from weightlab.report.html import write_report

            write_report(writer.temp)
        path = writer.commit()
    return Comparison(path=path, result=json.loads(dumps(result)))


def _value_text(axis: str, value) -> str:
    """A compared value in a directory name: "128x64", a file by its stem."""
    if axis == "hidden":
        return hidden_text(value)
    return Path(str(value)).stem if isinstance(value, str) and "/" in value else str(value)


def summarise(base: RunConfig, axis: str, values: list, seeds: list[int], summaries: dict[int, list[dict]]) -> dict:
    variants = []
    for index, value in enumerate(values):
        runs = summaries[index]
        variants.append(
            {
                "value": value,
                "parameters": runs[0]["parameters"],
                "runs": [s["run_id"] for s in runs],
                **aggregate.variant_summary(runs),
            }
        )
    differences = []
    for i, j in itertools.combinations(range(len(values)), 2):
        a, b = (j, i)  # later minus earlier: "64 − 16"
        differences.append(
            {
                "a": values[a],
                "b": values[b],
                **{
                    key: aggregate.paired_difference(summaries[a], summaries[b], key)
                    for key in ("test_accuracy_after", "test_loss_after", "train_seconds")
                },
            }
        )
    result = {
        "format_version": FORMAT_VERSION,
        "axis": axis,
        "values": values,
        "seeds": seeds,
        "config": base.to_dict(),
        "variants": variants,
        "differences": differences,
    }
    result["statements"] = [statement(axis, difference) for difference in differences]
    return result


def statement(axis: str, difference: dict) -> str:
    """One sentence: which variant is more accurate, by how much, how sure."""
    d = difference["test_accuracy_after"]
    shown = hidden_text if axis == "hidden" else str
    a, b = f"{axis}={shown(difference['a'])}", f"{axis}={shown(difference['b'])}"
    mean = 100 * d["mean"]
    if d["n"] < 2:
        return f"{a} − {b}: {mean:+.2f} points of test accuracy (one seed: no interval, no test)."
    low, high = 100 * d["ci_low"], 100 * d["ci_high"]
    interval = f"95% CI {low:+.2f} to {high:+.2f} points, paired over {d['n']} seeds, p = {d['p']:.2g}"
    if low > 0:
        return f"{a} beats {b} by {mean:.2f} points of test accuracy ({interval})."
    if high < 0:
        return f"{b} beats {a} by {-mean:.2f} points of test accuracy ({interval})."
    return f"{a} and {b} are not distinguishable: the difference is {mean:+.2f} points ({interval}); more seeds would tell."


def replay_alignment(stored: list, variants: int, seeds: int) -> dict:
    """How the page replays the variants on one timeline: comparison.json's "replay".

    Variants of one seed keep their snapshots at the same steps whenever they share the steps
    per epoch, the epochs and the snapshot count (everything but a compared batch size, epoch
    count, snapshot count or dataset): then ``aligned_by`` is "step" and ``snapshot_steps`` lists
    those steps; otherwise "epoch" (each run's /epochs) and ``snapshot_steps`` is null.
    """
    per_seed = []
    for seed in range(seeds):
        steps = []
        for variant in range(variants):
            store = stored[variant * seeds + seed].snapshot_store()
            try:
                steps.append(store.steps.tolist())
            finally:
                store.close()
        per_seed.append(steps)
    shared = all(steps == per_seed[0][0] for seed_steps in per_seed for steps in seed_steps)
    return {"aligned_by": "step" if shared else "epoch", "snapshot_steps": per_seed[0][0] if shared else None}
