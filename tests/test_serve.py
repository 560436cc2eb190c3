"""``amodal3d serve``: the functions behind the page, the command without Gradio, and the page itself
driven in headless Chromium over the DevTools protocol (skipped where Gradio or Chromium is missing)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amodal3d.errors import DataError
from amodal3d.serve import EXAMPLES_DIR, core, viewpoint

FOUR = EXAMPLES_DIR / "scene_four_objects.png"
TWO = EXAMPLES_DIR / "scene_two_objects.png"


@pytest.fixture(scope="module")
def segmenter():
    from amodal3d.pipeline import AmodalSegmenter

    return AmodalSegmenter.from_pretrained("cpu-small")


@pytest.fixture(scope="module")
def prediction(segmenter):
    return core.run_upload(segmenter, FOUR)


def test_examples_are_small_and_readable():
    files = sorted(EXAMPLES_DIR.iterdir())
    assert sum(f.stat().st_size for f in files) < 200_000
    for png in EXAMPLES_DIR.glob("*.png"):
        assert core.read_upload(png).shape == (256, 256, 3)


def test_predict_returns_overlay_table_and_files(prediction, tmp_path):
    n = len(prediction.instances.labels)
    assert n >= 2
    assert prediction.overlay.size == (256, 256)
    assert len(prediction.rows) == n and len(prediction.rows[0]) == len(core.TABLE_HEADERS)
    for row in prediction.rows:
        assert 0.0 <= row[3] <= 1.0  # occlusion rate
    assert prediction.pairs, "the example's objects overlap"
    files = core.write_downloads(prediction, tmp_path)
    results = json.loads(files["json"].read_text())
    assert len(results) == n and {"segmentation", "visible_segmentation", "viewpoint"} <= set(results[0])
    assert json.loads(files["order"].read_text())["pairs"]
    import trimesh

    assert len(files["glb"]) == n
    mesh = trimesh.load(files["glb"][0], force="mesh")
    assert len(mesh.faces) == len(prediction.instances.extras["meshes"][0][1])
    assert files["zip"].stat().st_size > 0


def test_masks_past_the_border_on_an_enlarged_canvas(segmenter, prediction, tmp_path):
    wide = core.run_upload(segmenter, FOUR, canvas_margin=16)
    assert segmenter.options.canvas_margin == 0  # the shared model is left as it was
    canvas = wide.instances.extras["amodal_canvas"]
    n = len(wide.instances.labels)
    assert canvas.shape == (n, 288, 288) and wide.overlay.size == (288, 288)
    assert (canvas[:, 16:272, 16:272] == wide.instances.amodal_masks).all()
    assert (wide.instances.amodal_masks == prediction.instances.amodal_masks).all()  # inside: unchanged
    frame = np.asarray(wide.overlay)
    assert (frame[15, 15:273] == 255).all() and (frame[0, 0] == 96).all()  # the image's frame, grey beyond
    entry = json.loads(core.write_downloads(wide, tmp_path)["json"].read_text())[0]
    assert entry["canvas_offset"] == [16, 16] and entry["canvas_size"] == [288, 288]
    with pytest.raises(ValueError, match="canvas_margin must be a whole number in"):
        core.run_upload(segmenter, FOUR, canvas_margin=-1)


def test_given_visible_masks_are_completed(segmenter):
    given = core.run_upload(segmenter, FOUR, EXAMPLES_DIR / "scene_four_objects_visible.json")
    assert given.given and len(given.instances.labels) == 4
    assert (given.instances.amodal_masks.sum((1, 2)) >= given.instances.visible_masks.sum((1, 2))).all()


@pytest.mark.parametrize("content, message", [(None, "no image"), (b"not an image", "cannot read the image")])
def test_bad_image_upload_gives_a_message(segmenter, tmp_path, content, message):
    path = None
    if content is not None:
        path = tmp_path / "bad.png"
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        core.run_upload(segmenter, path)


def test_image_over_the_pixel_limit_is_refused(segmenter, monkeypatch):
    monkeypatch.setenv("AMODAL3D_MAX_PIXELS", "10000")
    with pytest.raises(DataError, match="over the 10,000-pixel limit"):
        core.run_upload(segmenter, TWO)


@pytest.mark.parametrize("content, message", [("{", "malformed JSON"), ('{"images": 3}', "expected a COCO file"),
                                              ('{"images": [], "annotations": []}', "0 images")])
def test_bad_visible_masks_give_a_message(segmenter, tmp_path, content, message):
    path = tmp_path / "masks.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        core.run_upload(segmenter, TWO, path)


def test_viewpoint_rerender_changes_the_mask_and_is_fast(segmenter, prediction):
    instances = prediction.instances
    state = viewpoint.prepare(segmenter, prediction.image, instances.visible_masks, instances.labels)
    views = instances.extras["viewpoints"]
    assert np.allclose(state.azimuth, [v["azimuth"] for v in views], atol=1e-3)
    k = int(np.argmax(core.occlusion_rates(instances.visible_masks, instances.amodal_masks)))
    same = viewpoint.rerender(segmenter, state, k, views[k]["azimuth"], views[k]["elevation"])
    assert (same.prior == instances.extras["prior_masks"][k]).mean() > 0.99
    assert 0.0 < same.iou <= 1.0
    turned = [viewpoint.rerender(segmenter, state, k, views[k]["azimuth"] + 90, 60.0) for _ in range(3)]
    assert (turned[-1].prior != same.prior).sum() > 20
    assert min(r.seconds for r in turned) < 0.3
    assert viewpoint.draw(state, k, turned[-1]).size == (256, 256)
    with pytest.raises(ValueError, match="out of range"):
        viewpoint.rerender(segmenter, state, len(instances.labels), 0, 0)


def test_serve_without_gradio_exits_2_with_one_line(monkeypatch, capsys):
    from amodal3d.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[demo]"' in err


# --------------------------------------------------------------------------- the page in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """Headless Chromium driven over the Chrome DevTools protocol (websocket-client)."""

    def __init__(self, binary: str, profile: Path):
        import websocket

        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
             "--enable-unsafe-swiftshader", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1280,1000", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout} s for {expression}")

    def upload(self, selector: str, path: Path) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)

    def pixels(self, selector: str) -> np.ndarray:
        """(H, W, 3) uint8 of the element ``selector`` as drawn now (it must be in the viewport: Chromium
        does not draw a WebGL canvas outside it)."""
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(); "
                      "return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height]; })()")
        clip = dict(zip(("x", "y", "width", "height"), box, strict=True), scale=1)
        data = self.send("Page.captureScreenshot", format="png", clip=clip)["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def drawn_fraction(pixels: np.ndarray) -> float:
    """Share of the pixels of ``pixels`` (H, W, 3) that differ from its top-left one (the background) by
    more than 12 levels in a channel: 0 for a blank canvas."""
    return float((np.abs(pixels.astype(int) - pixels[0, 0].astype(int)).max(-1) > 12).mean())


def test_drawn_fraction_of_a_blank_and_a_drawn_canvas():
    blank = np.full((30, 40, 3), 250, np.uint8)
    assert drawn_fraction(blank) == 0.0
    blank[10:20, :20] = (200, 190, 230)  # a quarter of it drawn
    assert drawn_fraction(blank) == pytest.approx(1 / 6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_page_in_a_browser(segmenter, tmp_path):
    pytest.importorskip("gradio")
    pytest.importorskip("websocket")
    from amodal3d.serve.app import build

    port = free_port()
    demo = build(segmenter, tmp_path / "work")
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(EXAMPLES_DIR)])
    browser = DevTools(CHROMIUM, tmp_path / "profile")
    try:
        start = time.perf_counter()
        browser.send("Page.navigate", url=f"http://127.0.0.1:{port}/")
        browser.wait_for("!!document.querySelector('#image-file input[type=file]')")
        load_s = time.perf_counter() - start
        # the page's components arrive one by one; under load the options may follow the file input
        browser.wait_for("!!document.querySelector('#canvas-margin input')")
        assert browser.js("document.querySelector('#canvas-margin input').value") == "0"  # past the border: off
        browser.upload("#image-file input[type=file]", FOUR)
        browser.wait_for("document.querySelector('#image-file').innerText.includes('KB')")  # uploaded
        start = time.perf_counter()
        browser.js("document.querySelector('#run').click()")
        status = browser.wait_for("(document.querySelector('#status textarea') || {}).value || "
                                  "(document.querySelector('.toast-body') || {}).innerText", timeout=60)
        result_s = time.perf_counter() - start
        assert "instance" in status, status
        n = int(status.split()[0])
        names = [core.category_name(int(c)) for c in core.run_upload(segmenter, FOUR).instances.labels]
        assert len(names) == n
        shown = " && ".join(f"text.includes({json.dumps(name)})" for name in names)
        browser.wait_for(f"(() => {{ const text = document.querySelector('#instances').innerText; "
                         f"return {shown}; }})()")
        rows = browser.js("document.querySelector('#instances').innerText")
        assert sum(line.strip().isdigit() for line in rows.splitlines()) >= n  # the '#' column
        assert browser.wait_for("document.querySelector('#view-text').innerText.includes('IoU')")
        # the mesh viewer (WebGL, Babylon.js): Chromium draws it through SwiftShader (--use-angle=swiftshader
        # --enable-unsafe-swiftshader), and only once it is in the viewport
        assert browser.js("!!document.createElement('canvas').getContext('webgl2')"), "no WebGL in Chromium"
        browser.js("document.querySelector('#mesh canvas').scrollIntoView({block: 'center'})")
        deadline, drawn = time.monotonic() + 20, 0.0
        while drawn < 0.05 and time.monotonic() < deadline:
            drawn = drawn_fraction(browser.pixels("#mesh canvas"))
            time.sleep(0.1)
        assert drawn >= 0.05, f"the 3D viewer is blank ({drawn:.1%} of its canvas drawn)"
        shot = tmp_path / "serve.png"
        browser.screenshot(shot)
        assert Image.open(shot).size[0] >= 1000
        if os.environ.get("AMODAL3D_SCREENSHOT"):  # by hand, for docs/serve.md
            shutil.copy(shot, os.environ["AMODAL3D_SCREENSHOT"])
        print(f"page load {load_s:.2f} s, result after click {result_s:.2f} s")
        bad = tmp_path / "masks.json"  # a bad upload: a message on the page, no traceback
        bad.write_text("{")
        browser.upload("#masks-file input[type=file]", bad)
        browser.wait_for("document.querySelector('#masks-file').innerText.includes('masks.json')")
        time.sleep(1.0)  # the upload of one byte to loopback finishes
        browser.js("document.querySelector('#run').click()")
        toast = browser.wait_for("(document.querySelector('.toast-body') || {}).innerText", timeout=30)
        assert "malformed JSON" in toast and "Traceback" not in toast, toast
    finally:
        browser.close()
        demo.close()
