"""The pairwise occlusion order in ``amodal3d predict``'s results.json (issue 32): per entry ``instance``,
``depth_layer`` and ``occlusion_order`` (the pairs in which it is behind), computed once per image by the
result entries that predict and the serve page share."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amodal3d.cli import main
from amodal3d.masks import decode_rle
from amodal3d.occlusion import depth_layers, instance_order, occlusion_pairs
from amodal3d.predict import result_entries
from amodal3d.structures import Instances


def _square(y0: int, x0: int, side: int, size: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def _chain() -> Instances:
    """Three 16-pixel squares front to back, each overlapping the next by an 8 x 8 corner; listed
    back to front, so that the order is not the index order."""
    amodal = np.stack([_square(16, 16, 16), _square(8, 8, 16), _square(0, 0, 16)])
    covered, visible = np.zeros_like(amodal[0]), []
    for mask in amodal[::-1]:
        visible.append(mask & ~covered)
        covered |= mask
    n = len(amodal)
    return Instances(np.zeros((n, 4), np.float32), np.array([5, 4, 11]), np.array([0.9, 0.8, 0.7], np.float32),
                     np.stack(visible[::-1]), amodal, {"viewpoints": [{"azimuth": 0.0}] * n})


def test_result_entries_carry_the_order_of_the_masks():
    instances = _chain()
    entries = result_entries(instances, 7, "x.png")
    assert [(e["instance"], e["depth_layer"], e["occlusion_order"]) for e in entries] == [
        (0, 2, [{"front": 1, "back": 0, "hidden_fraction": 0.25}]),
        (1, 1, [{"front": 2, "back": 1, "hidden_fraction": 0.25}]),
        (2, 0, [])]
    pairs = occlusion_pairs(instances.visible_masks, instances.amodal_masks)
    assert result_entries(instances, 7, "x.png", pairs=pairs) == entries  # the serve page passes its own
    assert instance_order(0, []) == [] and result_entries(Instances.empty(5, 5), 1, "e.png") == []


def test_predict_writes_the_order_that_occlusion_gives_and_the_truth_has(tiny_dataset, tmp_path, capsys):
    """Given the visible masks of two generated test images, predict's pairs are those of
    :func:`occlusion_pairs` on its own masks, and in these clear cases those of the true depth order."""
    truth = json.loads((tiny_dataset / "annotations" / "test.json").read_text())
    images = tiny_dataset / "images" / "test"
    paths = [images / "000002.png", images / "000003.png"]
    out = tmp_path / "pred"
    assert main(["predict", *map(str, paths), "--visible", str(tiny_dataset / "annotations" / "test.json"),
                 "--out", str(out)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    expected = {"000002.png": {(1, 0), (2, 0)}, "000003.png": {(1, 0)}}  # (front, back) by the truth below
    for path in paths:
        [image] = [i for i in truth["images"] if i["file_name"] == path.name]
        anns = [a for a in truth["annotations"] if a["image_id"] == image["id"]]
        entries = [e for e in results if e["file_name"] == str(path)]
        assert [e["instance"] for e in entries] == list(range(len(anns)))  # the given masks' order
        visible = np.stack([decode_rle(e["visible_segmentation"]) for e in entries])
        amodal = np.stack([decode_rle(e["segmentation"]) for e in entries])
        assert np.array_equal(visible, np.stack([decode_rle(a["visible_segm"]) for a in anns]))

        pairs = occlusion_pairs(visible, amodal)
        written = [p for e in entries for p in e["occlusion_order"]]
        assert written == [{"front": p.front, "back": p.back, "hidden_fraction": round(p.hidden_fraction, 5)}
                           for p in sorted(pairs, key=lambda p: (p.back, p.front))]
        assert [e["depth_layer"] for e in entries] == depth_layers(len(entries), pairs)

        ordered = {(p["front"], p["back"]) for p in written}
        assert ordered == expected[path.name]
        assert all(anns[front]["depth_order"] < anns[back]["depth_order"] for front, back in ordered)
        true_pairs = occlusion_pairs(np.stack([decode_rle(a["visible_segm"]) for a in anns]),
                                     np.stack([decode_rle(a["amodal_segm"]) for a in anns]))
        assert {(p.front, p.back) for p in true_pairs} == ordered
        for p in written:  # the hidden fraction the completed masks give, near the true one
            [true] = [t for t in true_pairs if (t.front, t.back) == (p["front"], p["back"])]
            assert p["hidden_fraction"] == pytest.approx(true.hidden_fraction, abs=0.06)


def test_the_serve_page_downloads_the_order_it_shows(tmp_path):
    """The page's results.json (the entries predict writes) holds the pairs of its occlusion_order.json."""
    from amodal3d.serve import core

    chain = _chain()
    box = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), np.array([[0, 1, 2]]))
    instances = Instances(chain.boxes, chain.labels, chain.scores, chain.visible_masks, chain.amodal_masks,
                          {**chain.extras, "meshes": [box] * 3})
    pairs = occlusion_pairs(instances.visible_masks, instances.amodal_masks)
    prediction = core.Prediction(image=np.zeros((40, 40, 3), np.uint8), file_name="chain.png", instances=instances,
                                 overlay=None, rows=[], pairs=pairs, pair_rows=[], seconds=0.0)
    files = core.write_downloads(prediction, tmp_path)
    written = [p for e in json.loads(files["json"].read_text()) for p in e["occlusion_order"]]
    shown = json.loads(files["order"].read_text())["pairs"]
    assert [(p["front"], p["back"], p["hidden_fraction"]) for p in written] == \
        [(p["front"], p["back"], p["hidden_fraction"]) for p in shown] == [(1, 0, 0.25), (2, 1, 0.25)]
