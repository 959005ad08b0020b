"""The report: rendered for a tiny run, proof and comparison, opened in headless Chromium."""

import base64
import io
import re
import shutil

import numpy as np
import pytest

import weightlab
from weightlab.report.html import render, write_report

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return weightlab.run(dataset="synthetic", epochs=2, hidden=16, out=tmp_path_factory.mktemp("runs"), backend="jax")


@pytest.fixture(scope="module")
def tiny_proof(tmp_path_factory):
    from weightlab.experiments.prove import prove

    return prove(dataset="synthetic", epochs=1, hidden=8, seeds=2, out=tmp_path_factory.mktemp("proofs"), backend="jax")


@pytest.fixture(scope="module")
def tiny_comparison(tmp_path_factory):
    from weightlab.experiments.compare import compare

    return compare(
        dataset="synthetic", epochs=1, values=[4, 8], seeds=2, out=tmp_path_factory.mktemp("comparisons"), backend="jax"
    )


def embedded_images(page: str) -> list[np.ndarray]:
    import matplotlib.image

    return [
        matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    ]


def test_every_figure_is_embedded_and_drawn(tiny_run, tiny_proof, tiny_comparison):
    for directory, expected in ((tiny_run.path, 10), (tiny_proof.path, 4), (tiny_comparison.path, 4)):
        page = (directory / "report.html").read_text()
        images = embedded_images(page)
        assert len(images) == expected, directory
        for image in images:
            assert image.std() > 0.01  # not a blank canvas
        assert "http://" not in page and "https://" not in page and "<script" not in page


def test_rerendering_is_atomic_and_idempotent(tiny_run):
    before = (tiny_run.path / "report.html").read_text()
    write_report(tiny_run.path)
    after = (tiny_run.path / "report.html").read_text()
    assert len(after) == pytest.approx(len(before), rel=0.01)
    assert not [p for p in tiny_run.path.iterdir() if p.name.startswith(".report.html-")]
    probe = tiny_run.path / "probe.txt"
    probe.write_text("")  # the permissions any file written with open() gets here
    assert (tiny_run.path / "report.html").stat().st_mode == probe.stat().st_mode
    probe.unlink()


def test_user_text_is_escaped():
    page = render(
        title="<script>alert(1)</script>",
        subtitle="a & b",
        figures=[],
        footer=[("path", "<img src=x onerror=alert(1)>")],
    )
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "<img src=x" not in page


def test_report_of_a_directory_that_is_not_one(tmp_path):
    from weightlab.errors import RunDirError

    with pytest.raises(RunDirError, match="holds no summary.json"):
        write_report(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_reports_open_in_chromium_with_no_failed_requests(tiny_run, tiny_proof, tiny_comparison):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            for directory in (tiny_run.path, tiny_proof.path, tiny_comparison.path):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                failed, outgoing = [], []
                page.on("requestfailed", lambda request, failed=failed: failed.append(request.url))
                page.on(
                    "request",
                    lambda request, outgoing=outgoing: (
                        outgoing.append(request.url) if not request.url.startswith(("file:", "data:")) else None
                    ),
                )
                page.goto((directory / "report.html").as_uri(), wait_until="load")
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
                )
                assert images and all(complete and width > 0 and height > 0 for complete, width, height in images), (
                    directory
                )
                assert failed == [] and outgoing == [], (failed, outgoing)
                # the browser really painted each figure: a screenshot of it is not one flat colour
                for index in range(len(images)):
                    shot = page.locator("img").nth(index).screenshot()
                    import matplotlib.image

                    assert matplotlib.image.imread(io.BytesIO(shot), format="png").std() > 0.01
                page.close()
        finally:
            browser.close()


@pytest.mark.slow
def test_tensorboard_export_reads_back(tiny_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from weightlab.report.tensorboard import export

    export(tiny_run, tmp_path)
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {
        "epoch/loss",
        "epoch/val_accuracy",
        "step/loss",
        "weights/hidden/kernel",
        "weights/output/bias",
        "distance_from_init/hidden/kernel",
    } <= tags
    histograms = events.Tensors("weights/hidden/kernel")
    assert [event.step for event in histograms] == tiny_run.snapshots()[0].tolist()
    losses = events.Tensors("epoch/loss")
    from tensorboard.util import tensor_util

    assert [float(tensor_util.make_ndarray(e.tensor_proto)) for e in losses] == pytest.approx(
        tiny_run.summary["history"]["loss"], rel=1e-6
    )
