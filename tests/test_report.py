"""The report: its numbers and encodings on synthetic arrays; the pages of a tiny run, proof and comparison
rendered, and opened in headless Chromium with every request that is not a file refused."""

import base64
import io
import json
import re
import shutil
import zlib

import numpy as np
import pytest

import weightlab
from weightlab.report import png, replay_data
from weightlab.report.html import render, step_text, write_report
from weightlab.report.tiles import Tiling, first_layer_tiling, image_shape

CHROMIUM = shutil.which("chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """48 snapshots, each evaluated (test loss, accuracy, the panel), and landscape.npz: as every run stores them."""
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


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def script_json(page: str, element_id: str) -> dict:
    return json.loads(re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)[1])


# -- the pieces, on synthetic arrays ------------------------------------------------------------


def test_png_encoder_round_trips_through_a_real_decoder():
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 13, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(png.encode_png(rgb)), rgb)
    uri = png.data_uri(png.colourise(np.array([[-1.0, 0.0, np.nan, 1.0]]), -1, 1, png.diverging()))
    colours = decode_png(base64.b64decode(uri.split(",", 1)[1]))[0]
    assert tuple(colours[2]) == png.GUTTER and colours[0][2] > colours[0][0] and colours[3][0] > colours[3][2]


def test_dense_units_become_tiles_of_their_input_image():
    kernels = np.arange(3 * 6 * 5, dtype=np.float32).reshape(3, 6, 5)  # 3 snapshots, 2×3 images, 5 units
    tiling = Tiling("dense/kernel", "dense", 2, 3, 1, 5, columns=2)
    mosaics = tiling.mosaics(kernels)
    assert mosaics.shape == (3, *tiling.shape) == (3, 3 * 3 - 1, 2 * 4 - 1)
    for unit in range(5):
        row, column = divmod(unit, 2)
        tile = mosaics[1, row * 3 : row * 3 + 2, column * 4 : column * 4 + 3]
        assert np.array_equal(tile, kernels[1, :, unit].reshape(2, 3))
        assert tiling.unit_at(row * 3 + 1, column * 4 + 2) == unit
    assert np.isnan(mosaics[:, 2, :]).all() and np.isnan(mosaics[:, 6:, 4:]).all()  # gutter; no sixth unit


def test_conv_filters_become_small_kernels_with_channels_side_by_side():
    weights = {"conv/kernel": np.random.default_rng(1).normal(size=(2, 3, 3, 2, 4)), "conv/bias": np.zeros((2, 4))}
    tiling = first_layer_tiling({"image_shape": [8, 8, 2]}, weights)
    assert (tiling.kind, tiling.tile_height, tiling.tile_width, tiling.channels, tiling.units) == ("conv", 3, 3, 2, 4)
    tiles = tiling.tiles(weights["conv/kernel"])
    assert np.array_equal(tiles[0, 3, :, 3:6], weights["conv/kernel"][0, :, :, 1, 3])


def test_which_first_layers_are_pictures():
    flat = {"dense/kernel": np.zeros((2, 784, 4)), "dense/bias": np.zeros((2, 4))}
    assert image_shape({}, (784, 4)) == (28, 28)  # runs from before image_shape existed: MNIST
    assert first_layer_tiling({"image_shape": None}, flat) is None  # non-image data: histograms only
    assert first_layer_tiling({"image_shape": [28, 28, 1]}, flat).tile_height == 28
    assert first_layer_tiling({"image_shape": [10, 10]}, flat) is None  # 100 pixels cannot feed 784 inputs
    assert first_layer_tiling({}, {"dense/kernel": np.zeros((2, 20, 3))}) is None


def test_packed_pictures_decode_as_the_page_decodes_them():
    rng = np.random.default_rng(2)
    kernels = np.cumsum(rng.normal(scale=0.01, size=(9, 12, 4)), axis=0).astype(np.float32)
    tiling = Tiling("d/kernel", "dense", 3, 4, 1, 4, columns=2)
    payload = replay_data.pictures_payload(tiling, kernels)
    # the page's steps, in numpy: inflate, running sum mod 256 along time, decode the square-root codes, add W0
    size = payload["height"] * payload["width"]
    codes = np.frombuffer(zlib.decompress(base64.b64decode(payload["changes"])), np.uint8).reshape(-1, size)
    k = ((np.cumsum(codes.astype(np.int64), axis=0) % 256) - 127) / 127
    initial_codes = np.frombuffer(zlib.decompress(base64.b64decode(payload["initial"])), np.uint8).astype(np.float64)
    initial = np.where(initial_codes == 255, np.nan, (initial_codes - 127) / 127 * payload["initial_limit"])
    now = initial + np.sign(k) * k**2 * payload["change_scale"]
    expected = tiling.mosaics(kernels)[:, ::-1].reshape(len(kernels), size)
    change = np.abs(expected - expected[:1])
    assert np.nanmax(change) == pytest.approx(payload["change_scale"])  # nothing clipped
    # a square-root code is exact to half a level: |Δc| ≤ (|k| + 1/254)/127 · scale, and W₀ to half of its level
    error = np.abs(now - expected)
    bound = (np.sqrt(change / payload["change_scale"]) + 1 / 254) / 127 * payload["change_scale"]
    bound += payload["initial_limit"] / 254 + 1e-6
    assert np.array_equal(np.isnan(now), np.isnan(expected))
    assert np.all((error <= bound)[~np.isnan(expected)])
    # changes under 1% of the largest (the first steps') are still resolved to 1/12 of themselves
    small = (change < 0.01 * payload["change_scale"]) & ~np.isnan(change)
    change_error = np.abs(error - np.abs(initial - expected[0]))  # the W₀ part of the error taken out
    assert np.all(change_error[small] <= 0.01 * payload["change_scale"] / 12)
    own = np.percentile(np.nan_to_num(change), 99.5, axis=1)
    assert payload["change_limits"] == pytest.approx(np.where(own > 0, own, 1.0).tolist())


def test_histograms_over_time_count_like_numpy():
    stack = np.random.default_rng(3).normal(size=(5, 40, 7)).astype(np.float32)
    edges = replay_data.histogram_edges(stack, 30)
    counts = replay_data.histograms_over_time(stack, edges)
    for index in range(len(stack)):
        assert np.array_equal(counts[index], np.histogram(stack[index], bins=edges)[0])


def test_the_proof_plane_keeps_both_end_points_true():
    from weightlab.report.proof_page import endpoint_plane

    rng = np.random.default_rng(4)
    origin = rng.normal(size=50)
    trained = origin + np.cumsum(rng.normal(size=(6, 50)), axis=0) * (np.arange(6) > 0)[:, None]
    shuffled = origin + np.cumsum(rng.normal(size=(4, 50)), axis=0) * (np.arange(4) > 0)[:, None]
    first, second, geometry = endpoint_plane(trained, shuffled)
    assert np.allclose(first[0], 0) and np.allclose(second[0], 0)  # W₀ is the origin of both
    for projected, path in ((first, trained), (second, shuffled)):
        assert np.linalg.norm(projected[-1]) == pytest.approx(np.linalg.norm(path[-1] - origin))
    cosine = (trained[-1] - origin) @ (shuffled[-1] - origin) / np.prod([geometry["trained"], geometry["shuffled"]])
    assert geometry["cosine"] == pytest.approx(cosine)
    assert first[-1] @ second[-1] / np.linalg.norm(first[-1]) / np.linalg.norm(second[-1]) == pytest.approx(cosine)
    assert first[-1][1] == pytest.approx(0, abs=1e-9)  # the trained end lies on the first axis


def test_variants_line_up_by_step_or_by_epoch():
    from weightlab.report.comparison_page import _timeline

    same = [{"steps": [0, 2, 4], "epochs": [0, 0.5, 1.0]}, {"steps": [0, 3, 4], "epochs": [0, 0.75, 1.0]}]
    assert _timeline(same) == {"by": "step", "steps": [0, 2, 3, 4], "epochs": [0, 0.5, 0.75, 1.0]}
    halved = [{"steps": [0, 2, 4], "epochs": [0, 0.5, 1.0]}, {"steps": [0, 4, 8], "epochs": [0, 0.5, 1.0]}]
    assert _timeline(halved) == {"by": "epoch", "steps": None, "epochs": [0, 0.5, 1.0]}  # another batch size
    assert _timeline(same, aligned_by="epoch")["by"] == "epoch"  # as comparison.json says


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


# -- the pages -----------------------------------------------------------------------------------


def test_run_page_is_one_offline_file_with_the_replay_data(tiny_run):
    page = (tiny_run.path / "report.html").read_text()
    assert len(page) < 5_000_000
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=\"(?!data:)", page)  # nothing to fetch
    replay = script_json(page, "replay-data")
    steps, epochs, weights = tiny_run.snapshots()
    evaluations = tiny_run.snapshot_evaluations()
    track = replay["tracks"][0]
    assert replay["timeline"]["steps"] == steps.tolist() == track["steps"]
    assert track["test_accuracy"] == evaluations["test_accuracy"].tolist()
    assert set(track["histograms"]) == set(weights)
    assert len(track["panel"]["probabilities"]) == len(steps)
    figures = script_json(page, "figures-data")
    names = {layer.get("name") for spec in figures.values() for layer in spec["layers"]}
    assert {"replay-picture-now", "replay-picture-change", "replay-panel-bars", "replay-path-point"} <= names
    assert f'<span id="replay-step">{step_text(int(steps[-1]), float(epochs[-1]))}</span>' in page
    assert page.count("<noscript>") >= 2 and page.count('<img src="data:image/png;base64,') == 3


def test_a_run_without_pictures_or_evaluations_still_gets_its_page(tiny_run, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_run.path, plain)
    summary = json.loads((plain / "summary.json").read_text())
    summary["image_shape"] = None  # as a run on flat features says
    (plain / "summary.json").write_text(json.dumps(summary))
    (plain / "landscape.npz").unlink()
    (plain / "digests.json").unlink()  # edited by hand, as a run from before digests.json: none to match
    import h5py

    with h5py.File(plain / "snapshots.h5", "a") as h5:
        for name in ("test_loss", "test_accuracy", "panel"):
            del h5[name]
    page = write_report(plain).read_text()
    track = script_json(page, "replay-data")["tracks"][0]
    assert track["pictures"] is None and track["test_accuracy"] is None and track["panel"] is None
    names = {layer.get("name") for spec in script_json(page, "figures-data").values() for layer in spec["layers"]}
    assert "replay-picture-now" not in names and "replay-panel-bars" not in names
    assert '<img src="data:image/png' not in page
    assert "The path on the loss surface" not in page and "Every variable" in page


def test_rerendering_is_atomic_and_idempotent(tiny_run):
    before = (tiny_run.path / "report.html").read_text()
    write_report(tiny_run.path)
    after = (tiny_run.path / "report.html").read_text()
    assert after == before
    assert not [p for p in tiny_run.path.iterdir() if p.name.startswith(".report.html-")]
    probe = tiny_run.path / "probe.txt"
    probe.write_text("")  # the permissions any file written with open() gets here
    assert (tiny_run.path / "report.html").stat().st_mode == probe.stat().st_mode
    probe.unlink()


def test_proof_and_comparison_pages_carry_their_figures(tiny_proof, tiny_comparison):
    proof = (tiny_proof.path / "report.html").read_text()
    titles = [spec["title"] for spec in script_json(proof, "figures-data").values()]
    assert any("two paths from the same W₀" in t for t in titles) and "Moving is not improving" in proof
    assert "Both paths on the loss surface" in proof  # from the proof's own landscape.npz
    surfaced = tiny_proof.path.parent / "with-landscape"
    shutil.copytree(tiny_proof.path, surfaced)
    (surfaced / "digests.json").unlink()  # its landscape.npz is replaced by hand below: no digest to match
    rng = np.random.default_rng(5)
    np.savez(  # the proof's landscape.npz as the snapshots helper documents it
        surfaced / "landscape.npz",
        explained_variance_ratio=np.array([0.8, 0.1]),
        path_trained=rng.normal(size=(4, 2)),
        path_shuffled_labels=rng.normal(size=(3, 2)),
        path_loss_trained=np.array([2.3, 1.0, 0.5, 0.3]),
        path_loss_shuffled_labels=np.array([2.3, 2.3, 2.31]),
        steps_trained=np.array([0, 1, 2, 3]),
        steps_shuffled_labels=np.array([0, 1, 3]),
        grid_a=np.linspace(-2, 2, 5),
        grid_b=np.linspace(-2, 2, 4),
        grid_loss=rng.random((4, 5)) + 0.1,
        sample_indices=np.arange(10),
    )
    page = write_report(surfaced).read_text()
    assert "Both paths on the loss surface" in page and "to 0.300 along the trained path and to 2.310" in page
    comparison = (tiny_comparison.path / "report.html").read_text()
    replay = script_json(comparison, "replay-data")
    assert [t["prefix"] for t in replay["tracks"]] == ["v0-", "v1-"]
    assert replay["timeline"]["steps"] == sorted(set(replay["tracks"][0]["steps"]) | set(replay["tracks"][1]["steps"]))
    assert ".incomplete-" not in comparison and ".incomplete-" not in proof


# -- in a real browser ---------------------------------------------------------------------------


def open_offline(browser, path, **context):
    """A page with every request that is not a file refused and recorded, and its console errors collected."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    refused, errors = [], []

    def route(route):
        if route.request.url.startswith(("file:", "data:")):
            return route.continue_()
        refused.append(route.request.url)
        return route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return page, refused, errors


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make browser installs it)")
def test_the_replay_moves_in_chromium_offline(tiny_run, tiny_proof, tiny_comparison):
    from playwright.sync_api import sync_playwright

    steps, epochs, _ = tiny_run.snapshots()
    accuracy = tiny_run.snapshot_evaluations()["test_accuracy"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page, refused, errors = open_offline(browser, tiny_run.path / "report.html")
            page.wait_for_selector("#replay.ready", timeout=20_000)
            shots = {}
            for key, index in (("End", -1), ("Home", 0)):
                page.keyboard.press(key)
                assert page.text_content("#replay-step") == step_text(int(steps[index]), float(epochs[index]))
                assert float(page.get_attribute("#replay-accuracy", "data-value")) == accuracy[index]
                page.wait_for_timeout(300)  # let Bokeh repaint before the screenshot
                shots[key] = decode_png(page.locator("#replay").screenshot()).astype(np.int16)
            assert shots["End"].shape == shots["Home"].shape
            assert np.mean(np.any(shots["End"] != shots["Home"], axis=2)) > 0.02  # the pictures and bars moved
            page.keyboard.press("ArrowRight")
            assert page.text_content("#replay-step") == step_text(int(steps[1]), float(epochs[1]))
            change_picture = page.locator("#replay [data-figure]").nth(1)
            shared = decode_png(change_picture.screenshot()).astype(np.int16)
            page.check("input[name=own-scale]")  # the first step's small change, on its own colour scale
            page.wait_for_timeout(300)
            own = decode_png(change_picture.screenshot()).astype(np.int16)
            assert np.abs(own - shared).mean() > 1 and own.std() > shared.std()
            assert refused == [] and errors == [], (refused, errors)

            for directory in (tiny_proof.path, tiny_comparison.path):
                page, refused, errors = open_offline(browser, directory / "report.html")
                page.wait_for_selector(".bk-Canvas, .bk-Figure", state="attached", timeout=20_000)
                page.wait_for_timeout(500)
                assert refused == [] and errors == [], (directory, refused, errors)

            page, refused, errors = open_offline(browser, tiny_run.path / "report.html", java_script_enabled=False)
            assert page.locator("p.noscript").is_visible() and "turn JavaScript on" in page.text_content("p.noscript")
            assert not page.locator("#replay .controls").is_visible()  # nothing to press without the script
            images = page.locator("#replay noscript img, #replay .static img")
            assert images.count() == 3
            for index in range(3):
                assert decode_png(images.nth(index).screenshot()).std() > 5  # drawn, not a flat colour
            assert page.locator(".cards").is_visible() and refused == []
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
