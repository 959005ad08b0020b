"""examples/tutorial.ipynb runs top to bottom in a fresh kernel, as a reader would run it."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_tutorial_notebook_runs_without_an_error(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "examples" / "tutorial.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    shown = "".join(output.get("data", {}).get("text/html", "") for output in outputs)
    warnings = [output.text for output in outputs if output.get("name") == "stderr" and "Warning" in output.text]
    assert not warnings, warnings
    assert "<b>weightlab run</b>" in shown and "<iframe srcdoc=" in shown
    assert "Test accuracy after training" in text or "Test accuracy after training" in shown
    assert "holds: True" in text and "hidden=64" in text and "beats" in text
    assert {path.name for path in tmp_path.iterdir()} >= {"runs", "proofs", "comparisons"}
