"""What the page does with an upload, without Gradio: read the image (the pixel limit of
:func:`amodal3d.data.dataset.read_image`), read optional visible masks (COCO JSON, through
``amodal3d predict``'s loader), run the pipeline, and turn its output into an overlay, a table per
instance, the occlusion order and files to download (COCO results JSON, one GLB mesh per instance)."""

from __future__ import annotations

import copy
import json
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from amodal3d.categories import DEFAULT, Taxonomy
from amodal3d.data.dataset import read_image
from amodal3d.errors import DataError
from amodal3d.occlusion import OcclusionPair, depth_layers, occlusion_pairs, occlusion_rates
from amodal3d.predict import category_name, given_from_annotations, load_visible_json, mesh_bytes, result_entries
from amodal3d.structures import GivenVisible, Instances
from amodal3d.visualize import overlay

TABLE_HEADERS = ["#", "category", "score", "occlusion rate", "azimuth", "elevation", "distance",
                 "depth layer", "behind", "in front of"]
PAIR_HEADERS = ["front", "back", "hidden fraction of back", "overlap px"]


def instance_name(k: int, category: int, taxonomy: Taxonomy = DEFAULT) -> str:
    return f"{k} {category_name(category, taxonomy)}"


def read_upload(path: str | Path | None) -> np.ndarray:
    """The uploaded image as uint8 (H, W, 3); DataError (one line) when there is none, it cannot be
    read or it is over the pixel limit (refused from its header, as ``amodal3d predict`` refuses it)."""
    if path is None or not str(path).strip():
        raise DataError("no image: upload one or pick an example")
    return read_image(Path(path))


def read_given(json_path: str | Path, image_name: str, height: int, width: int,
               taxonomy: Taxonomy = DEFAULT) -> GivenVisible:
    """Visible masks for the uploaded image from a COCO JSON (``amodal3d predict --visible``'s format):
    its only image entry, or the one whose ``file_name`` has the upload's file name. DataError when
    none or several match or a mask does not fit the image."""
    entries = load_visible_json(json_path, taxonomy)
    name = Path(image_name).name
    if len(entries) == 1:
        entry = entries[0]
    else:
        named = [e for e in entries if Path(e.file_name.replace("\\", "/")).name == name]
        if len(named) != 1:
            raise DataError(f"visible masks: {len(entries)} images in the JSON and {len(named)} named {name!r}: "
                            f"give a JSON of this image only")
        entry = named[0]
    return given_from_annotations(entry.annotations, height, width, f"visible masks ({entry})", taxonomy)


@dataclass
class Prediction:
    """One image's result as the page shows it."""

    image: np.ndarray
    file_name: str
    instances: Instances
    overlay: Image.Image
    rows: list[list]
    pairs: list[OcclusionPair]
    pair_rows: list[list]
    seconds: float
    given: bool = False
    extras: dict = field(default_factory=dict)
    taxonomy: Taxonomy = DEFAULT  # the model's categories (names and ids of its labels)

    @property
    def names(self) -> list[str]:
        return [instance_name(k, int(c), self.taxonomy) for k, c in enumerate(self.instances.labels)]


def table_rows(instances: Instances, pairs: list[OcclusionPair], taxonomy: Taxonomy = DEFAULT) -> list[list]:
    """One row per instance (:data:`TABLE_HEADERS`): occlusion rate = hidden fraction of the amodal
    mask; depth layer 0 = nothing in front; ``behind``: the instances in front of it."""
    n = len(instances.labels)
    rates = occlusion_rates(instances.visible_masks, instances.amodal_masks) if n else np.zeros(0)
    layers = depth_layers(n, pairs)
    rows = []
    for k in range(n):
        view = instances.extras["viewpoints"][k]
        behind = ", ".join(str(p.front) for p in pairs if p.back == k) or "-"
        front_of = ", ".join(str(p.back) for p in pairs if p.front == k) or "-"
        rows.append([k, category_name(int(instances.labels[k]), taxonomy), round(float(instances.scores[k]), 3),
                     round(float(rates[k]), 3), round(view["azimuth"], 1), round(view["elevation"], 1),
                     round(view["distance"], 2), layers[k], behind, front_of])
    return rows


def with_margin(segmenter, canvas_margin: int):
    """``segmenter`` continuing the amodal masks ``canvas_margin`` pixels past each image border
    (:class:`~amodal3d.pipeline.PipelineOptions` ``canvas_margin``; ValueError outside [0, 1024]): a
    shallow copy sharing its models when the margin differs, so that the page's shared model is left
    as it is."""
    options = getattr(segmenter, "options", None)
    if options is None or options.canvas_margin == canvas_margin:
        return segmenter
    changed = copy.copy(segmenter)
    changed.options = options.replace(canvas_margin=canvas_margin)
    return changed


def canvas_overlay(image: np.ndarray, instances: Instances, labels: list[str]) -> Image.Image:
    """The overlay on the enlarged canvas of ``instances.extras["amodal_canvas"]`` (C, H + 2m, W + 2m):
    the image at the canvas offset on grey, the amodal masks continued past its border, and the image's
    frame outlined in white."""
    canvas = instances.extras["amodal_canvas"]
    top, left = instances.extras["canvas_offset"]
    height, width = image.shape[:2]
    background = np.full((*canvas.shape[1:], 3), 96, np.uint8)
    background[top:top + height, left:left + width] = image
    visible = np.zeros(canvas.shape, bool)
    visible[:, top:top + height, left:left + width] = instances.visible_masks
    picture = overlay(background, visible, canvas, labels)
    ImageDraw.Draw(picture).rectangle([left - 1, top - 1, left + width, top + height], outline=(255, 255, 255))
    return picture


def predict_image(segmenter, image: np.ndarray, given: GivenVisible | None = None,
                  file_name: str = "upload.png", canvas_margin: int = 0) -> Prediction:
    """Run ``segmenter`` (an :class:`amodal3d.pipeline.AmodalSegmenter`) on ``image`` and build what
    the page shows; ``canvas_margin`` m > 0: the amodal masks continued m pixels past each border, the
    overlay drawn on that enlarged canvas (:func:`canvas_overlay`) and ``results.json`` with the canvas."""
    segmenter = with_margin(segmenter, canvas_margin)
    start = time.perf_counter()
    instances = segmenter.predict(image, given)
    seconds = time.perf_counter() - start
    n = len(instances.labels)
    pairs = occlusion_pairs(instances.visible_masks, instances.amodal_masks,
                            soft=instances.extras.get("amodal_probs")) if n else []
    taxonomy = getattr(segmenter, "taxonomy", None) or DEFAULT
    names = [f"{k} {category_name(int(c), taxonomy)} {s:.2f}"
             for k, (c, s) in enumerate(zip(instances.labels, instances.scores))]
    if "amodal_canvas" in instances.extras:
        picture = canvas_overlay(image, instances, names)
    else:
        picture = overlay(image, instances.visible_masks, instances.amodal_masks, names)
    pair_rows = [[instance_name(p.front, int(instances.labels[p.front]), taxonomy),
                  instance_name(p.back, int(instances.labels[p.back]), taxonomy), round(p.hidden_fraction, 3),
                  p.overlap] for p in pairs]
    return Prediction(image, file_name, instances, picture, table_rows(instances, pairs, taxonomy), pairs,
                      pair_rows, seconds, given is not None, taxonomy=taxonomy)


def write_downloads(prediction: Prediction, folder: str | Path) -> dict[str, object]:
    """Write ``results.json`` (COCO results), ``occlusion_order.json`` (the occlusion pairs),
    ``meshes/instance_K_CATEGORY.glb`` and ``meshes.zip`` into ``folder``.
    Returns {"json": path, "order": path, "glb": [paths], "zip": path or None}."""
    folder = Path(folder)
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    results = folder / "results.json"
    results.write_text(json.dumps(result_entries(prediction.instances, 1, prediction.file_name,
                                                 prediction.taxonomy, pairs=prediction.pairs)))
    order = folder / "occlusion_order.json"
    order.write_text(json.dumps({"file_name": prediction.file_name,
                                 "pairs": [p.to_dict() for p in prediction.pairs],
                                 "method": "masks: in the amodal overlap, the larger visible cover is in front "
                                           "(amodal3d.occlusion.occlusion_pairs)"}))
    glbs = []
    for k, (verts, faces) in enumerate(prediction.instances.extras["meshes"]):
        # a dataset's category name may hold any character: only letters, digits, '-' and '_' in a file name
        name = re.sub(r"[^A-Za-z0-9_-]", "_", category_name(int(prediction.instances.labels[k]), prediction.taxonomy))
        path = folder / "meshes" / f"instance_{k}_{name}.glb"
        path.write_bytes(mesh_bytes(verts, faces, "glb"))
        glbs.append(path)
    archive = None
    if glbs:
        archive = folder / "meshes.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in glbs:
                bundle.write(path, path.name)
    return {"json": results, "order": order, "glb": glbs, "zip": archive}


def run_upload(segmenter, image_path: str | Path | None, visible_json: str | Path | None = None,
               progress: Callable[[float, str], None] | None = None, canvas_margin: int = 0) -> Prediction:
    """The page's Run button without the page: read, (optionally) read visible masks, predict (with the
    masks continued ``canvas_margin`` pixels past the border: :func:`predict_image`).
    Raises :class:`amodal3d.errors.Amodal3dError` / ValueError with a one-line message on a bad upload."""
    step = progress or (lambda fraction, text: None)
    step(0.05, "reading the image")
    image = read_upload(image_path)
    name = Path(str(image_path)).name
    given = None
    if visible_json is not None and str(visible_json).strip():
        step(0.1, "reading the visible masks")
        given = read_given(visible_json, name, *image.shape[:2], getattr(segmenter, "taxonomy", None) or DEFAULT)
    step(0.2, "segmenting (steps 1-5)")
    return predict_image(segmenter, image, given, name, canvas_margin)
