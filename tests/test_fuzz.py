"""Fuzzing the reading boundary: real directories, one file damaged at a time, every command that reads them.

A real tiny run, proof, comparison, sweep and interrupted run are made once per module (on
synthetic data). Each example copies one, damages one file (see `mutations`), and calls the CLI
in process. The promise: exit 0 with a correct result, or exit 2 with one line on stderr —
never a traceback, never a visible run that is not what it claims. ``make test`` runs a bounded
number of examples per file type; WEIGHTLAB_FUZZ_EXAMPLES=500 runs more.
"""

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightlab
from mutations import mutate
from weightlab.cli import main
from weightlab.experiments.compare import compare
from weightlab.experiments.prove import prove
from weightlab.experiments.sweep import sweep

EXAMPLES = int(os.environ.get("WEIGHTLAB_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
TINY = dict(dataset="synthetic", hidden=4, backend="jax")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Directories of every kind, made once; never changed (each example works on a copy)."""
    root = tmp_path_factory.mktemp("corpus")
    runs = {
        "run": weightlab.run(**TINY, epochs=2, seed=0, out=root / "runs", report=False),
        "same_shape": weightlab.run(**TINY, epochs=2, seed=1, out=root / "runs", report=False),
        "other": weightlab.run(**{**TINY, "hidden": 6}, epochs=1, seed=2, out=root / "runs", report=False),
    }
    proof = prove(epochs=1, seeds=2, out=root / "proofs", report=False, **TINY)
    comparison = compare(
        epochs=1, axis="hidden", values=[4, 6], seeds=1, out=root / "comparisons", report=False, dataset="synthetic"
    )
    swept = sweep(
        grid={"hidden": [4, 6]}, seeds=1, workers=1, out=root / "sweeps", report=False, dataset="synthetic", epochs=1
    )
    cut = root / "interrupted"

    def stop_after_first_epoch(done, total, logs):
        if logs is not None and logs["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weightlab.run(**TINY, epochs=2, seed=0, out=cut, progress=stop_after_first_epoch, report=False)
    (interrupted,) = cut.iterdir()
    return Corpus(
        {
            "run": runs["run"].path,
            "others": [runs["same_shape"].path, runs["other"].path],
            "reference": runs["run"],
            "proof": proof.path,
            "comparison": comparison.path,
            "sweep": swept.path,
            "interrupted": interrupted,
        }
    )


class Corpus(dict):
    """The fixture's directories by kind (its repr stays short in Hypothesis's reports)."""

    def __repr__(self) -> str:
        return "corpus"


def cli(argv: list[str]) -> tuple[int, str]:
    """The CLI in process: (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    return code, err.getvalue()


def assert_one_line_or_success(code: int, err: str, what: str) -> None:
    assert "Traceback" not in err, f"{what}: {err}"
    assert code in (0, 2), f"{what}: exit {code}: {err}"
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("weightlab: error: "), f"{what}: {err!r}"


def files_of(directory: Path) -> list[str]:
    return sorted(
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.is_file() and path.name != "report.html" and "tensorboard" not in path.parts
    )


@contextlib.contextmanager
def damaged_copy(source: Path, data, others: list[Path], only: str | None = None):
    """A copy of ``source`` with one file mutated: (copy, the file's relative path, what was done)."""
    with tempfile.TemporaryDirectory(prefix="weightlab-fuzz-") as tmp:
        copy = Path(tmp) / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("report.html", "tensorboard"))
        # As written before digests.json: then the schemas alone must hold (no traceback, one line), though a
        # value changed to another valid one (a time, a name) cannot be told from the original.
        undigested = data.draw(st.booleans(), label="as written before digests.json")
        if undigested:
            for digests in copy.rglob("digests.json"):
                digests.unlink()
        names = [name for name in files_of(copy) if only is None or name.endswith(only)]
        name = data.draw(st.sampled_from(names), label="file")
        target = copy / name
        peers = [other / Path(name).parent for other in others]
        done = mutate(target, data, peers)
        yield copy, name, (f"{done} (no digests.json)" if undigested else done)


def check_report(corpus, kind: str, data, only: str | None = None) -> None:
    with damaged_copy(corpus[kind], data, corpus["others"], only) as (copy, name, done):
        code, err = cli(["report", str(copy)])
        assert_one_line_or_success(code, err, f"report after {name}: {done}")
        if code == 0:
            assert (copy / "report.html").is_file()
            if kind == "run" and "no digests.json" not in done:
                assert_run_is_what_it_claims(copy, corpus["reference"], f"{name}: {done}")


def assert_run_is_what_it_claims(copy: Path, reference, what: str, predictions: bool = True) -> None:
    """A damaged run that still reads must read as the original: every file the command read is the original's."""
    stored = weightlab.read_run(copy)
    assert stored.summary == reference.summary, f"{what}: the summary differs"
    assert stored.history() == reference.history(), f"{what}: the history differs"
    steps, _, weights = stored.snapshots()
    original_steps, _, original = reference.snapshots()
    assert np.array_equal(steps, original_steps), f"{what}: the snapshot steps differ"
    for variable, stack in original.items():
        assert np.array_equal(weights[variable], stack), f"{what}: {variable} differs"
    for key, array in reference.steps().items():
        assert np.array_equal(stored.steps()[key], array, equal_nan=array.dtype.kind == "f"), (
            f"{what}: steps.npz's {key} differs"
        )
    for key, array in reference.predictions().items() if predictions else ():
        assert np.array_equal(stored.predictions()[key], array, equal_nan=array.dtype.kind == "f"), (
            f"{what}: predictions.npz's {key} differs"
        )


@pytest.mark.parametrize("only", [".json", ".npz", ".h5", ".csv"])
@FUZZ
@given(data=st.data())
def test_report_of_a_damaged_run(corpus, only, data):
    check_report(corpus, "run", data, only)


@FUZZ
@given(data=st.data())
def test_report_of_a_damaged_proof(corpus, data):
    check_report(corpus, "proof", data, "proof.json")


@FUZZ
@given(data=st.data())
def test_report_of_a_damaged_comparison(corpus, data):
    check_report(corpus, "comparison", data)


@FUZZ
@given(data=st.data())
def test_report_of_a_damaged_sweep(corpus, data):
    check_report(corpus, "sweep", data)


@FUZZ
@given(data=st.data())
def test_export_of_a_damaged_run(corpus, data):
    pytest.importorskip("tensorboard")
    with damaged_copy(corpus["run"], data, corpus["others"]) as (copy, name, done):
        code, err = cli(["export", "tensorboard", str(copy), "--out", str(copy / "tensorboard")])
        assert_one_line_or_success(code, err, f"export after {name}: {done}")
        if code == 0 and "no digests.json" not in done:
            assert_run_is_what_it_claims(copy, corpus["reference"], f"{name}: {done}", predictions=False)


@FUZZ
@given(data=st.data())
def test_resume_of_a_damaged_checkpoint(corpus, data):
    """A damaged checkpoint or config is refused and kept; one that resumes ends as the uninterrupted run."""
    with damaged_copy(corpus["interrupted"], data, []) as (copy, name, done):
        code, err = cli(["run", "--resume", str(copy), "--json"])
        assert_one_line_or_success(code, err, f"resume after {name}: {done}")
        finished = copy.parent / copy.name.removeprefix(".incomplete-")
        if code == 2:
            assert copy.is_dir() and not finished.exists(), f"{name}: {done}: the interrupted run was lost"
        else:
            resumed = weightlab.read_run(finished)
            reference = corpus["reference"].summary
            for key in ("test_accuracy_after", "steps", "history", "layers"):
                assert resumed.summary[key] == reference[key], f"resume after {name}: {done}: {key} differs"
