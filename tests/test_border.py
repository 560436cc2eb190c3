"""Amodal masks continued past the image border (``PipelineOptions.canvas_margin``, ``predict
--canvas-margin``): the canvas's central crop is the in-frame prediction, the JSON fields, the option's
checks. Tiny untrained models: invariants, not accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from amodal3d.cli import main
from amodal3d.data.schema import categories_json
from amodal3d.engine.config import to_dict
from amodal3d.engine.weights import save_weights
from amodal3d.masks import decode_rle, encode_rle
from amodal3d.models.refine import RefineConfig, RefineNet
from amodal3d.models.shape import ShapeConfig, ShapePrior
from amodal3d.pipeline import AmodalSegmenter, PipelineOptions
from amodal3d.structures import GivenVisible


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    shape, refine = ShapeConfig(roi_size=32, width=8, feature_dim=32, hypotheses=2), RefineConfig(width=8)
    save_weights(folder / "shape", ShapePrior(shape).state_dict(), "shape-prior", to_dict(shape))
    save_weights(folder / "refine", RefineNet(refine).state_dict(), "refine", to_dict(refine))
    return folder


def _truncated(height: int = 64, width: int = 80) -> tuple[np.ndarray, GivenVisible]:
    """Two objects cut by the left and bottom borders (their ROIs reach past the image)."""
    image = (np.random.default_rng(0).uniform(0, 255, (height, width, 3))).astype(np.uint8)
    visible = np.zeros((2, height, width), bool)
    visible[0, 10:30, 0:15] = True
    visible[1, 40:64, 40:70] = True
    boxes = np.array([[0, 10, 15, 30], [40, 40, 70, 64]], np.float32)
    return image, GivenVisible(visible, np.array([5, 11]), boxes)


@pytest.mark.parametrize("mode", ["a3d", "prior-only"])
@pytest.mark.parametrize("margin", [1, 16])
def test_canvas_central_crop_is_the_in_frame_prediction(pipeline_dir, mode, margin):
    image, given = _truncated()
    plain = AmodalSegmenter.from_pretrained(pipeline_dir, mode=mode).predict(image, given)
    wide = AmodalSegmenter.from_pretrained(pipeline_dir, mode=mode, canvas_margin=margin).predict(image, given)
    assert "amodal_canvas" not in plain.extras  # off by default
    np.testing.assert_array_equal(wide.amodal_masks, plain.amodal_masks)  # in-frame masks unchanged
    canvas = wide.extras["amodal_canvas"]
    assert canvas.dtype == bool and canvas.shape == (2, 64 + 2 * margin, 80 + 2 * margin)
    assert wide.extras["canvas_offset"] == (margin, margin)
    np.testing.assert_array_equal(canvas[:, margin:margin + 64, margin:margin + 80], plain.amodal_masks)


def test_canvas_empty_image(pipeline_dir):
    segmenter = AmodalSegmenter.from_pretrained(pipeline_dir, canvas_margin=4)
    empty = GivenVisible(np.zeros((0, 20, 30), bool), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    out = segmenter.predict(np.zeros((20, 30, 3), np.uint8), empty)
    assert out.extras["amodal_canvas"].shape == (0, 28, 38) and out.extras["canvas_offset"] == (4, 4)


@pytest.mark.parametrize("bad", [-1, 1025, 1.5, True, "8", None])
def test_canvas_margin_is_checked(bad):
    with pytest.raises(ValueError, match="canvas_margin"):
        PipelineOptions(canvas_margin=bad)
    assert PipelineOptions(canvas_margin=1024).canvas_margin == 1024


def test_predict_writes_the_canvas(pipeline_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    image, given = _truncated()
    Image.fromarray(image).save(images / "cut.png")
    coco = {"images": [{"id": 1, "file_name": "cut.png", "height": 64, "width": 80}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": int(given.labels[k]),
                             "segmentation": encode_rle(given.visible_masks[k])} for k in range(2)],
            "categories": categories_json()}
    visible_json = tmp_path / "visible.json"
    visible_json.write_text(json.dumps(coco))
    base = ["predict", str(images), "--weights", str(pipeline_dir), "--visible", str(visible_json), "--no-overlays"]
    assert main(base + ["--out", str(tmp_path / "plain")]) == 0
    assert main(base + ["--out", str(tmp_path / "wide"), "--canvas-margin", "12"]) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    wide = json.loads((tmp_path / "wide" / "results.json").read_text())
    assert len(wide) == len(plain) == 2 and not any("amodal_canvas" in r for r in plain)
    for a, b in zip(plain, wide):
        assert b["segmentation"] == a["segmentation"]
        assert b["canvas_offset"] == [12, 12] and b["canvas_size"] == [64 + 24, 80 + 24]
        canvas = decode_rle(b["amodal_canvas"])
        assert canvas.shape == (88, 104)
        x, y = b["canvas_offset"]
        np.testing.assert_array_equal(canvas[y:y + 64, x:x + 80], decode_rle(a["segmentation"]))
    with pytest.raises(SystemExit):  # refused at parse time, past the option's bound
        main(base + ["--out", str(tmp_path / "bad"), "--canvas-margin", "1025"])
