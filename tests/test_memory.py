"""Memory does not grow with the number of snapshots: they are streamed to snapshots.h5, never collected."""

import json
import os
import subprocess
import sys

import pytest

# A ≈5 M-parameter MLP (784 → 6,300 → 10): one snapshot is ≈20 MB, 60 of them ≈1.2 GB.
TRAIN_AND_MEASURE = """
import json, resource, sys
import h5py
import weightlab
run = weightlab.run(
    dataset="synthetic", hidden=6300, epochs=1, batch_size=32, snapshots=int(sys.argv[2]),
    out=sys.argv[1], report=False, backend="jax",
)
with h5py.File(run.path / "snapshots.h5") as h5:
    steps = h5["steps"][()]
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "snapshots": len(steps),
                  "parameters": run.summary["parameters"]}))
"""


def peak_rss(out, snapshots: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_MEASURE, str(out), str(snapshots)],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, KERAS_BACKEND="jax"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sixty_snapshots_of_a_5m_parameter_model_cost_no_more_memory_than_six(tmp_path):
    few, many = peak_rss(tmp_path / "few", 6), peak_rss(tmp_path / "many", 60)
    assert few["parameters"] > 4_900_000 and (few["snapshots"], many["snapshots"]) == (6, 60)
    # 54 more snapshots are ≈1.07 GB of weights; streamed, they must cost far less than that
    assert (many["peak_kib"] - few["peak_kib"]) * 1024 < 300e6, (few, many)
