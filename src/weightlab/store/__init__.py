"""The run directory: a public format, written atomically, read back into a `Run`.

    runs/<run-id>/
      config.json     the config, the dataset's source and every version that made the numbers
      history.csv     per epoch: loss, accuracy, val_loss, val_accuracy, seconds
      steps.npz       per step: loss and, per variable, distance from init, update norm, weight norm
      snapshots.h5    weights at step 0, each epoch's end and every N steps if asked
      landscape.npz   the PCA path of the snapshots and the loss on a grid in that plane (newer runs)
      predictions.npz the trained model's prediction and confidence for every test image
      summary.json    the numbers asked first (see the README for its keys)
      report.html     the report, self-contained

A run directory is complete or absent: it is written under a hidden temporary name in the
same parent and renamed into place only once every file is on disk. Every file is read back
through its schema (`schemas`): checked as a whole, and against the other files, before use.
"""

from weightlab.store.checkpoint import read_checkpoint
from weightlab.store.format import CHECKPOINT, FORMAT_VERSION, HISTORY_COLUMNS, dumps, jsonable, new_run_id
from weightlab.store.readers import (
    member_run,
    read_comparison,
    read_directory,
    read_grid_file,
    read_landscape,
    read_proof,
    read_proof_landscape,
    read_sweep,
)
from weightlab.store.run import Run, read_config, read_run
from weightlab.store.writer import RunWriter

__all__ = [
    "CHECKPOINT",
    "FORMAT_VERSION",
    "HISTORY_COLUMNS",
    "Run",
    "RunWriter",
    "dumps",
    "jsonable",
    "member_run",
    "new_run_id",
    "read_checkpoint",
    "read_comparison",
    "read_config",
    "read_directory",
    "read_grid_file",
    "read_landscape",
    "read_proof",
    "read_proof_landscape",
    "read_run",
    "read_sweep",
]
