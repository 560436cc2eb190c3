"""The Gradio page of ``amodal3d serve`` (needs the ``demo`` extra: ``pip install -e ".[demo]"``).

Upload an image (or pick a bundled example) and, optionally, its visible masks as COCO JSON, and set
how many pixels past the border the amodal masks continue (0: none); the page shows the overlay
(visible solid, hidden hatched), a row per instance (category, score, occlusion rate, viewpoint, depth
layer), the pairwise occlusion order, each instance's mesh in a 3D viewer and the files to download.
Below, the viewpoint editor re-renders one instance's prior and amodal mask at an edited azimuth /
elevation. Requests queue and run one at a time (the model is shared)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from amodal3d.errors import Amodal3dError
from amodal3d.pipeline import MAX_CANVAS_MARGIN
from amodal3d.serve import EXAMPLES_DIR, core, viewpoint

TITLE = "amodal3d: amodal instance segmentation guided by a 3D shape prior"


def examples() -> list[list]:
    """[image, visible-masks JSON or None] per bundled example."""
    rows = []
    for image in sorted(EXAMPLES_DIR.glob("*.png")):
        masks = image.with_name(f"{image.stem}_visible.json")
        rows.append([str(image), None])
        if masks.is_file():
            rows.append([str(image), str(masks)])
    return rows


def _message(error: BaseException) -> str:
    """One line for the page: our errors as they are, anything else by its type (no traceback)."""
    text = str(error) if isinstance(error, (Amodal3dError, ValueError)) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:500] or type(error).__name__


def _shown(picture: Image.Image, side: int = 512) -> Image.Image:
    """Small images enlarged (nearest neighbour, whole factors) so that masks are visible on the page."""
    factor = max(1, side // max(picture.size))
    return picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST) if factor > 1 else picture


def _path(upload) -> str | None:
    if upload is None:
        return None
    return upload if isinstance(upload, str) else getattr(upload, "name", str(upload))


def build(segmenter, workdir: str | Path | None = None) -> gr.Blocks:
    """The page over ``segmenter`` (an :class:`amodal3d.pipeline.AmodalSegmenter`). Downloads are
    written under ``workdir`` (a temporary folder by default), one sub-folder per request."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="amodal3d-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def run(image_file, masks_file, margin=0, progress=gr.Progress()):  # noqa: B008 (how Gradio asks for progress)
        start = time.perf_counter()
        try:
            prediction = core.run_upload(segmenter, _path(image_file), _path(masks_file),
                                         progress=lambda f, text: progress(f, desc=text),
                                         canvas_margin=int(margin or 0))
            progress(0.9, desc="writing the meshes and results")
            files = core.write_downloads(prediction, tempfile.mkdtemp(dir=workdir))
        except Exception as error:  # any failure: one line on the page, never a traceback
            raise gr.Error(_message(error), print_exception=False) from None
        n = len(prediction.instances.labels)
        names = prediction.names
        status = (f"{n} instance{'s' if n != 1 else ''} in {prediction.seconds:.2f} s "
                  f"(request {time.perf_counter() - start:.2f} s)"
                  f"{'; visible masks given' if prediction.given else ''}")
        downloads = [str(files["json"]), str(files["order"])] + ([str(files["zip"])] if files["zip"] else [])
        state = {"prediction": prediction, "glb": [str(p) for p in files["glb"]], "view": None}
        first = names[0] if names else None
        return (_shown(prediction.overlay), status, prediction.rows, prediction.pair_rows, downloads,
                gr.update(choices=names, value=first), files["glb"][0] if names else None,
                gr.update(choices=names, value=first), state)

    def show_mesh(choice, state):
        if not state or choice is None:
            return None
        return state["glb"][state["prediction"].names.index(choice)]

    def pick_view(choice, state):
        """Sliders to the instance's predicted viewpoint, and its render there."""
        if not state or choice is None:
            return gr.update(), gr.update(), None, ""
        k = state["prediction"].names.index(choice)
        view = state["prediction"].instances.extras["viewpoints"][k]
        picture, text = render_view(choice, view["azimuth"], view["elevation"], state)
        return round(view["azimuth"], 1), round(view["elevation"], 1), picture, text

    def render_view(choice, azimuth, elevation, state):
        if not state or choice is None:
            return None, "run a prediction first"
        try:
            prediction = state["prediction"]
            if state["view"] is None:  # steps 2-4 once per image, on the first edit
                instances = prediction.instances
                state["view"] = viewpoint.prepare(segmenter, prediction.image, instances.visible_masks,
                                                  instances.labels)
            k = prediction.names.index(choice)
            render = viewpoint.rerender(segmenter, state["view"], k, float(azimuth), float(elevation))
        except Exception as error:
            raise gr.Error(_message(error), print_exception=False) from None
        hidden = int((render.amodal & ~state["view"].visible[k]).sum())
        text = (f"render-and-compare IoU (prior vs visible mask) **{render.iou:.3f}** · hidden part "
                f"{hidden} px · re-rendered in {1000 * render.seconds:.0f} ms")
        return _shown(viewpoint.draw(state["view"], k, render), 384), text

    with gr.Blocks(title="amodal3d") as demo:
        gr.Markdown(f"## {TITLE}\nVisible parts solid, hidden parts hatched. Upload an image (PNG, JPEG, "
                    "TIFF) or pick an example; optionally add its visible masks (COCO JSON, as "
                    "`amodal3d predict --visible` reads them) to have them completed.")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image_file = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="image-file")
                masks_file = gr.File(label="Visible masks (COCO JSON, optional)", file_types=[".json"],
                                     type="filepath", elem_id="masks-file")
                margin = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_CANVAS_MARGIN,
                                   label="Past the border: pixels per side (0: inside the image only)",
                                   elem_id="canvas-margin")
                button = gr.Button("Segment", variant="primary", elem_id="run")
                gr.Examples(examples(), inputs=[image_file, masks_file], label="Examples")
            with gr.Column(scale=2):
                picture = gr.Image(label="Amodal masks (hidden hatched)", type="pil", interactive=False, height=420,
                                   elem_id="overlay")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        table = gr.Dataframe(headers=core.TABLE_HEADERS, label="Instances", interactive=False, elem_id="instances")
        pairs = gr.Dataframe(headers=core.PAIR_HEADERS, label="Occlusion order (front hides part of back)",
                             interactive=False, elem_id="pairs")
        with gr.Row():
            with gr.Column():
                mesh_choice = gr.Dropdown(label="Mesh of instance", choices=[], elem_id="mesh-choice")
                mesh = gr.Model3D(label="3D shape (GLB)", elem_id="mesh")
            downloads = gr.File(label="Downloads: COCO results, occlusion order, meshes", file_count="multiple",
                                interactive=False, elem_id="downloads")
        gr.Markdown("### Viewpoint\nTurn an instance: its prior (white outline) and amodal mask re-render.")
        with gr.Row():
            with gr.Column(scale=1):
                view_choice = gr.Dropdown(label="Instance", choices=[], elem_id="view-choice")
                azimuth = gr.Slider(-180, 180, value=0, step=1, label="azimuth (degrees)", elem_id="azimuth")
                elevation = gr.Slider(-viewpoint.ELEVATION_LIMIT, viewpoint.ELEVATION_LIMIT, value=20, step=1,
                                      label="elevation (degrees)", elem_id="elevation")
                view_text = gr.Markdown(elem_id="view-text")
            view_picture = gr.Image(label="Re-rendered", type="pil", interactive=False, height=360, elem_id="view")

        button.click(run, [image_file, masks_file, margin],
                     [picture, status, table, pairs, downloads, mesh_choice, mesh, view_choice, state])
        mesh_choice.input(show_mesh, [mesh_choice, state], mesh)
        view_choice.change(pick_view, [view_choice, state], [azimuth, elevation, view_picture, view_text])
        for slider in (azimuth, elevation):
            slider.release(render_view, [view_choice, azimuth, elevation, state], [view_picture, view_text],
                           trigger_mode="always_last")
    demo.queue(default_concurrency_limit=1)
    return demo


def launch(weights: str = "cpu-small", host: str = "127.0.0.1", port: int = 7860, device: str = "cpu",
           block: bool = True) -> gr.Blocks:
    """Load the model, build the page and serve it on ``host:port``."""
    from amodal3d.pipeline import AmodalSegmenter

    segmenter = AmodalSegmenter.from_pretrained(weights, device=device)
    segmenter.predict(np.zeros((64, 64, 3), np.uint8))  # warm up: the first request is not the slow one
    demo = build(segmenter)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True,
                allowed_paths=[str(EXAMPLES_DIR)], quiet=True)
    return demo
