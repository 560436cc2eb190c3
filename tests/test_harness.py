"""The evaluation harness: oracle and baseline predictors on hand-made and generated data, tables, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amodal3d import CATEGORY_NAMES, cli, methods
from amodal3d.data.dataset import load_annotation_file, read_image, split_paths
from amodal3d.data.schema import categories_json, dataset_json
from amodal3d.errors import Amodal3dError, WeightsError
from amodal3d.evaluation import harness
from amodal3d.evaluation.baselines import ConvexHullOf, VisibleAsAmodal
from amodal3d.evaluation.harness import (
    evaluate,
    format_table,
    markdown_table,
)
from amodal3d.evaluation.metrics import OCCLUDED_MIN_RATE, category_averaged
from amodal3d.masks import decode_rle, encode_rle, mask_to_bbox, masks_to_boxes
from amodal3d.methods import METHODS, build_predictor
from amodal3d.structures import GivenVisible, Instances

REQUIRED_KEYS = {"miou", "occluded_miou", "per_category", "by_occlusion", "amodal_ap", "visible_ap",
                 "images_per_s", "method", "protocol", "split", "num_images", "num_instances"}


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r


@pytest.fixture(scope="module")
def disc_dataset(tmp_path_factory) -> Path:
    """3 images of 40x40 with overlapping discs and boxes (nearest first), in the amodal3d schema."""
    root = tmp_path_factory.mktemp("discs")
    h = w = 40
    scenes = [
        [(3, _disc(h, w, 15, 15, 9)), (5, _disc(h, w, 20, 26, 10))],
        [(3, _disc(h, w, 20, 12, 7)), (1, _disc(h, w, 22, 22, 11)), (5, _disc(h, w, 10, 30, 8))],
        [(1, np.pad(np.ones((12, 20), bool), ((4, 24), (10, 10)))), (3, _disc(h, w, 25, 20, 10))],
    ]
    images, anns = [], []
    rng = np.random.default_rng(0)
    for image_id, objects in enumerate(scenes, start=1):
        taken = np.zeros((h, w), bool)
        pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        for depth, (cat, amodal) in enumerate(objects, start=1):
            visible = amodal & ~taken
            occluder = amodal & taken
            taken |= amodal
            pixels[visible] = rng.integers(80, 255, 3, dtype=np.uint8)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "iscrowd": 0,
                         "amodal_segm": encode_rle(amodal), "segmentation": encode_rle(amodal),
                         "visible_segm": encode_rle(visible), "occluder_segm": encode_rle(occluder),
                         "bbox": mask_to_bbox(amodal), "amodal_bbox": mask_to_bbox(amodal),
                         "visible_bbox": mask_to_bbox(visible), "area": int(amodal.sum()),
                         "occlude_rate": float(1 - visible.sum() / amodal.sum()), "depth_order": depth})
        name = f"{image_id:04d}.png"
        (root / "images" / "test").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "images" / "test" / name)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
    (root / "annotations").mkdir()
    data = dataset_json(images, anns, categories=categories_json())
    (root / "annotations" / "test.json").write_text(json.dumps(data))
    return root


class Oracle:
    """Returns the ground truth of the image (found by its pixels): the perfect predictor."""

    name = "oracle"

    def __init__(self, root: Path, split: str = "test", keep=lambda anns: anns):
        ann_file, image_dir = split_paths(root, split)
        data = load_annotation_file(ann_file)
        by_image: dict[int, list] = {}
        for a in data["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        self.truth = {}
        for info in data["images"]:
            pixels = read_image(image_dir / info["file_name"])
            self.truth[hashlib.sha1(pixels.tobytes()).hexdigest()] = (pixels.shape[:2],
                                                                      keep(by_image.get(info["id"], [])))

    def predict(self, image: np.ndarray, given: GivenVisible | None = None) -> Instances:
        (h, w), anns = self.truth[hashlib.sha1(image.tobytes()).hexdigest()]
        if not anns:
            return Instances.empty(h, w)
        amodal = np.stack([decode_rle(a["amodal_segm"]) for a in anns])
        visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        return Instances(masks_to_boxes(amodal), np.array([a["category_id"] for a in anns], np.int64),
                         np.ones(len(anns), np.float32), visible, amodal)


def _check_json(result: dict) -> None:
    assert REQUIRED_KEYS <= set(result)
    json.dumps(result, allow_nan=False)


def visible_baseline_figures(annotation_file: Path) -> dict:
    """The visible baseline's figures under given-visible, worked out from the annotation file alone
    (docs/metrics.md), without the harness or its metrics: it returns each given visible mask as the amodal
    mask, so an instance's amodal IoU is |visible| / |amodal| = 1 - occlude_rate (visible ⊆ amodal) and the
    IoU of its hidden part is 0 (1 where nothing is hidden: nothing there, nothing found). mIoU averages per
    category, then over the categories present; occluded mIoU over the instances with occlude_rate >= 0.05."""
    data = json.loads(Path(annotation_file).read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    ious: dict[int, list[float]] = {}
    occluded: dict[int, int] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        ious.setdefault(ann["category_id"], []).append(1.0 - ann["occlude_rate"])
        if ann["occlude_rate"] >= 0.05:
            occluded[ann["category_id"]] = occluded.get(ann["category_id"], 0) + 1
    means = {c: sum(v) / len(v) for c, v in ious.items()}
    return {"miou": sum(means.values()) / len(means), "occluded_miou": 0.0 if occluded else None,
            "instance_miou": sum(map(sum, ious.values())) / sum(map(len, ious.values())),
            "num_instances": sum(map(len, ious.values())),
            "per_category": {names[c]: {"miou": means.get(c), "occluded_miou": 0.0 if c in occluded else None,
                                        "count": len(ious.get(c, [])), "occluded_count": occluded.get(c, 0)}
                             for c in names}}


def assert_visible_baseline_figures(result: dict, annotation_file: Path) -> None:
    """``result`` (the visible baseline, given-visible) holds exactly the figures the annotations give."""
    expected = visible_baseline_figures(annotation_file)
    # occlude_rate is stored rounded to 6 decimals: the figures agree to 1e-6
    assert result["miou"] == pytest.approx(expected["miou"], abs=1e-6)
    assert result["instance_miou"] == pytest.approx(expected["instance_miou"], abs=1e-6)
    assert result["occluded_miou"] == expected["occluded_miou"]
    assert result["num_instances"] == result["num_matched"] == expected["num_instances"]
    assert result["per_category"] == {
        name: {**fig, "miou": None if fig["miou"] is None else pytest.approx(fig["miou"], abs=1e-6)}
        for name, fig in expected["per_category"].items()}
    data = json.loads(Path(annotation_file).read_text())  # per instance: image by image, in file order
    rates = [a["occlude_rate"] for image in data["images"] for a in data["annotations"]
             if a["image_id"] == image["id"] and not a.get("iscrowd", 0)]
    assert result["instances"]["amodal_iou"] == pytest.approx([1.0 - r for r in rates], abs=1e-6)
    # the hidden part: none found (0), or none there to find (both empty: 1)
    assert result["instances"]["occluded_iou"] == [1.0 if r == 0 else 0.0 for r in rates]


@pytest.mark.parametrize("protocol", ["end-to-end", "given-visible"])
def test_perfect_predictor_scores_one(disc_dataset, protocol):
    result = evaluate(Oracle(disc_dataset), disc_dataset, "test", protocol, progress=False)
    _check_json(result)
    assert result["num_images"] == 3 and result["num_instances"] == 7 and result["num_matched"] == 7
    assert result["miou"] == pytest.approx(1.0) and result["occluded_miou"] == pytest.approx(1.0)
    for ap in ("amodal_ap", "visible_ap"):
        assert result[ap] == dict.fromkeys(("AP", "AP50", "AP75"), pytest.approx(1.0))
    assert result["per_category"]["dresser"]["count"] == 3 and result["per_category"]["chair"]["count"] == 2
    assert result["per_category"]["lamp"] == {"miou": None, "occluded_miou": None, "count": 0,
                                              "occluded_count": 0}
    assert list(result["per_category"]) == list(CATEGORY_NAMES)
    assert sum(b["count"] for b in result["by_occlusion"].values()) == 7
    assert result["images_per_s"] > 0


def test_matching_options(disc_dataset):
    class WrongLabels(Oracle):
        def predict(self, image, given=None):
            out = super().predict(image, given)
            return Instances(out.boxes, out.labels + 1, out.scores, out.visible_masks, out.amodal_masks)

    agnostic = evaluate(WrongLabels(disc_dataset), disc_dataset, "test", progress=False)
    assert agnostic["miou"] == pytest.approx(1.0) and agnostic["amodal_ap"]["AP"] == 0.0
    strict = evaluate(WrongLabels(disc_dataset), disc_dataset, "test", progress=False, match_categories=True)
    assert strict["miou"] == 0.0 and strict["num_matched"] == 0
    # a dataset of another taxonomy: its ids are not the model's, so end-to-end AP is class-agnostic
    path = disc_dataset / "annotations" / "test.json"
    data = json.loads(path.read_text())
    foreign = disc_dataset.parent / "foreign"
    shutil.copytree(disc_dataset, foreign)
    (foreign / "annotations" / "test.json").write_text(json.dumps(
        {**data, "categories": [{**c, "name": f"thing {c['id']}"} for c in data["categories"]]}))
    result = evaluate(WrongLabels(disc_dataset), foreign, "test", progress=False)
    assert result["amodal_ap"]["AP"] == pytest.approx(1.0) and result["ap_class_agnostic"]
    assert not agnostic["ap_class_agnostic"] and list(result["per_category"]) == [f"thing {i}" for i in range(1, 14)]
    with pytest.raises(Amodal3dError, match="another taxonomy"):
        evaluate(WrongLabels(disc_dataset), foreign, "test", progress=False, match_categories=True)
    on_amodal = evaluate(Oracle(disc_dataset), disc_dataset, "test", progress=False, match_on="amodal")
    assert on_amodal["miou"] == pytest.approx(1.0) and on_amodal["matching"]["on"] == "amodal"


def test_missing_predictions_count_zero(disc_dataset):
    # Keep only the nearest instance of each image: the other 4 are unmatched and score 0.
    oracle = Oracle(disc_dataset, keep=lambda anns: anns[:1])
    result = evaluate(oracle, disc_dataset, "test", progress=False)
    assert result["num_matched"] == 3 and result["num_instances"] == 7
    assert result["instance_miou"] == pytest.approx(3 / 7)
    assert result["amodal_ap"]["AP"] < 1.0


def test_visible_baseline_given_visible(disc_dataset):
    result = evaluate(VisibleAsAmodal(), disc_dataset, "test", "given-visible", progress=False)
    _check_json(result)
    assert_visible_baseline_figures(result, disc_dataset / "annotations" / "test.json")
    assert result["occluded_miou"] == 0.0 and 0.5 < result["miou"] < 1.0
    assert result["visible_ap"]["AP"] == pytest.approx(1.0)  # the given visible masks come back
    # Discs: the convex hull recovers most of each hidden part.
    hull = evaluate(ConvexHullOf(), disc_dataset, "test", "given-visible", progress=False)
    assert hull["miou"] > result["miou"] and hull["occluded_miou"] > 0.0


def test_end_to_end_wrappers_postprocess_a_detector(disc_dataset):
    class VisibleDetector(Oracle):
        """A perfect *visible* detector: its amodal masks are wrong on purpose (empty)."""

        def predict(self, image, given=None):
            out = super().predict(image, given)
            empty = np.zeros_like(out.amodal_masks)
            return Instances(out.boxes, out.labels, out.scores, out.visible_masks, empty)

    detector = VisibleDetector(disc_dataset)
    for wrapper in (VisibleAsAmodal, ConvexHullOf):
        e2e = evaluate(wrapper(detector), disc_dataset, "test", "end-to-end", progress=False)
        given = evaluate(wrapper(), disc_dataset, "test", "given-visible", progress=False)
        assert e2e["miou"] == pytest.approx(given["miou"])
        assert e2e["occluded_miou"] == pytest.approx(given["occluded_miou"])
    with pytest.raises(Amodal3dError, match="needs a visible detector"):
        evaluate(VisibleAsAmodal(), disc_dataset, "test", "end-to-end", progress=False)


def test_given_visible_checks_the_instance_count(disc_dataset):
    class DropsOne:
        name = "drops-one"

        def predict(self, image, given=None):
            out = VisibleAsAmodal().predict(image, given)
            return Instances(out.boxes[1:], out.labels[1:], out.scores[1:], out.visible_masks[1:],
                             out.amodal_masks[1:])

    with pytest.raises(Amodal3dError, match="instances for"):
        evaluate(DropsOne(), disc_dataset, "test", "given-visible", progress=False)


def test_limit_and_unknown_protocol(disc_dataset):
    result = evaluate(VisibleAsAmodal(), disc_dataset, "test", "given-visible", limit=1, progress=False)
    assert result["num_images"] == 1 and result["num_instances"] == 2
    with pytest.raises(Amodal3dError, match="unknown protocol"):
        evaluate(VisibleAsAmodal(), disc_dataset, "test", "oracle", progress=False)


def test_build_predictor_errors(tmp_path, monkeypatch):
    with pytest.raises(Amodal3dError, match="unknown method 'mask-rcnn'; available methods: visible, ") as info:
        build_predictor("mask-rcnn")
    message = str(info.value)
    assert "unknown method 'mask-rcnn'" in message and all(m in message for m in METHODS)
    with pytest.raises(WeightsError, match="not found"):
        build_predictor("a3d", weights=tmp_path)  # a folder without pipeline weights
    monkeypatch.setattr(methods, "shipped_weights", lambda name: None)
    with pytest.raises(WeightsError, match="needs --weights"):
        build_predictor("maskrcnn-amodal")
    with pytest.raises(WeightsError, match="not found"):
        build_predictor("orcnn", weights=tmp_path / "missing.safetensors")
    assert build_predictor("visible").name == "visible"
    assert build_predictor("convex-hull").name == "convex-hull"


def test_every_detecting_method_adds_the_mirror_images_detections_unless_told_not_to():
    for name in ("maskrcnn-amodal", "orcnn", "visible", "a3d", "a3d-no-prior"):
        for mirrored in (True, False):
            predictor = build_predictor(name, mirrored_detections=mirrored)
            step1 = getattr(predictor, "detector", predictor)  # a3d*: the pipeline's step 1
            assert step1.crop_head is not None and step1.mirrored_detections is mirrored, (name, mirrored)
        alone = build_predictor(name, crop_head=False)  # the mirror image's detections need the crop head
        assert not getattr(alone, "detector", alone).mirrored_detections


def test_tables():
    per = {c: {"miou": 0.5, "occluded_miou": 0.25, "count": 2} for c in ("airplane", "car")}
    a = {"method": "visible", "protocol": "given-visible", "categories": ["airplane", "car"],
         "per_category": per, "miou": 0.5, "occluded_miou": 0.0, "amodal_ap": {"AP": 0.123}}
    b = {**a, "method": "convex-hull", "categories": ["airplane", "bench"],
         "per_category": {"bench": {"miou": 0.8766}}, "amodal_ap": {"AP": None}}
    md = markdown_table([a, b]).splitlines()
    assert md[0] == "| Method | airplane | car | bench | mIoU | occluded mIoU | amodal AP |"
    assert md[2] == "| visible | 50.0 | 50.0 | – | 50.0 | 0.0 | 12.3 |"
    assert md[3] == "| convex-hull | – | – | 87.7 | 50.0 | 0.0 | – |"
    text = format_table([a])
    assert "airplane" in text.splitlines()[0] and text.splitlines()[2].split()[-1] == "50.0"


# ---------------------------------------------------------------- generated data and the CLI

def test_baselines_on_generated_data(tiny_dataset):
    vis = evaluate(VisibleAsAmodal(), tiny_dataset, "test", "given-visible", progress=False)
    hull = evaluate(ConvexHullOf(), tiny_dataset, "test", "given-visible", progress=False)
    assert vis["num_instances"] > 0
    assert_visible_baseline_figures(vis, tiny_dataset / "annotations" / "test.json")
    # The generated objects (chairs, tables, lamps...) are far from convex and most instances are
    # unoccluded, so the hull's extra pixels cost more than it recovers: on generated data the hull
    # does NOT beat the visible masks in mIoU (it does on the disc data above).
    assert 0.0 < vis["miou"] <= 1.0 and 0.0 < hull["miou"] < 1.0
    if vis["occluded_miou"] is not None:
        assert vis["occluded_miou"] == 0.0 <= hull["occluded_miou"]


def test_cli_evaluate_visible_given_visible(tiny_dataset, tmp_path, capsys):
    out, md = tmp_path / "res" / "visible.json", tmp_path / "visible.md"
    rc = cli.main(["evaluate", "--method", "visible", "--protocol", "given-visible", "--data", str(tiny_dataset),
                "--split", "test", "--json", str(out), "--markdown", str(md), "--quiet"])
    assert rc == 0
    result = json.loads(out.read_text())
    _check_json(result)
    assert result["method"] == "visible" and result["protocol"] == "given-visible"
    # the exact figures, worked out from the annotation file: each instance scores 1 - occlude_rate
    expected = visible_baseline_figures(tiny_dataset / "annotations" / "test.json")
    assert expected["occluded_miou"] == 0.0 and expected["miou"] < 0.99  # some instances are occluded
    assert_visible_baseline_figures(result, tiny_dataset / "annotations" / "test.json")
    assert result["visible_ap"] == dict.fromkeys(("AP", "AP50", "AP75"), pytest.approx(1.0))  # given back
    assert set(result["amodal_ap"]) == {"AP", "AP50", "AP75"}
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "airplane" in printed
    assert f"mIoU {100 * expected['miou']:.1f}   occluded mIoU 0.0" in printed
    assert md.read_text().startswith("| Method | airplane |")
    row = md.read_text().splitlines()[2].split(" | ")
    assert row[0] == "| visible" and row[-3:] == [f"{100 * expected['miou']:.1f}", "0.0",
                                                  f"{100 * result['amodal_ap']['AP']:.1f} |"]


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The pixels of the rectangle [x0, x1) x [y0, y1) of a 32x24 image (a polygon with integer corners
    covers the pixels whose centres it contains)."""
    mask = np.zeros((24, 32), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_cocoa_native_fixture_converts_to_the_figures_its_shapes_give(tmp_path, capsys):
    """tests/fixtures/cocoa_tiny (native COCOA: per-image JSON with ``regions``; amodal polygons, visible
    masks as RLE or polygons, ``order``, ``name``): every mask, area, occlusion rate, occluder and box of
    the conversion equals what the shapes drawn in tests/fixtures/make_cocoa_tiny.py give; the converted
    dataset validates, and the visible baseline scores on it exactly 1 - occlusion rate per instance."""
    from amodal3d.data.readers import convert, segmentation_mask
    from amodal3d.data.validate import validate_dataset
    from conftest import COCOA_TINY

    data = convert(COCOA_TINY)
    assert data["images"] == [{"id": 11, "file_name": "1.png", "width": 32, "height": 24},
                              {"id": 12, "file_name": "2.png", "width": 32, "height": 24}]
    # names stripped and lower-cased ("Cup " is "cup"), numbered in name order
    assert data["categories"] == [{"id": i, "name": n, "supercategory": "cocoa"}
                                  for i, n in enumerate(("bottle", "box", "cup"), start=1)]
    cup, bottle, l_cup = _box(4, 4, 14, 12), _box(10, 6, 22, 18), _box(18, 2, 30, 8) | _box(26, 8, 30, 20)
    bottle2, box = _box(12, 4, 18, 22), _box(2, 10, 30, 16)
    none = np.zeros((24, 32), bool)
    expected = [  # id, image, category, amodal, visible, occluder (nearer objects hiding a part), depth order
        (11001, 11, 3, cup, cup, none, 1),
        (11002, 11, 1, bottle, bottle & ~cup, cup, 2),
        (11003, 11, 3, l_cup, l_cup & ~bottle, bottle & ~cup, 3),
        (12001, 12, 1, bottle2, bottle2, none, 1),
        (12002, 12, 2, box, box & ~bottle2, bottle2, 2),
    ]
    assert [(a["id"], a["image_id"], a["category_id"], a["depth_order"]) for a in data["annotations"]] == [
        (ann_id, image, category, order) for ann_id, image, category, *_, order in expected]
    for a, (_, _, _, amodal, visible, occluder, _) in zip(data["annotations"], expected):
        assert np.array_equal(decode_rle(a["amodal_segm"]), amodal) and a["segmentation"] == a["amodal_segm"]
        assert np.array_equal(decode_rle(a["visible_segm"]), visible)
        assert np.array_equal(decode_rle(a["occluder_segm"]), occluder)
        assert a["area"] == amodal.sum() and a["visible_area"] == visible.sum()
        assert a["occlude_rate"] == round(1 - visible.sum() / amodal.sum(), 6)
        assert a["bbox"] == a["amodal_bbox"] == mask_to_bbox(amodal) and a["visible_bbox"] == mask_to_bbox(visible)
    assert [a["area"] for a in data["annotations"]] == [80, 144, 120, 108, 168]
    assert [a["visible_area"] for a in data["annotations"]] == [80, 120, 112, 108, 132]
    assert [a["occlude_rate"] for a in data["annotations"]] == [0.0, 0.166667, 0.066667, 0.0, 0.214286]
    assert [a["isStuff"] for a in data["annotations"]] == [0, 0, 1, 0, 0]
    assert data["annotations"][1]["amodal_bbox"] == [10.0, 6.0, 12.0, 12.0]
    # the box's visible polygons include an annotator's stray pixel outside its amodal mask: dropped
    raw = json.loads((COCOA_TINY / "2.json").read_text())["regions"][1]["visible_mask"]
    stray = segmentation_mask(raw, 24, 32, "2.json")
    assert stray[20, 5] and stray.sum() == 133 and not decode_rle(data["annotations"][4]["visible_segm"])[20, 5]

    root = tmp_path / "cocoa"  # the converted file is a dataset of its own
    shutil.copytree(COCOA_TINY, root / "images" / "test")
    assert cli.main(["convert", str(COCOA_TINY), "--out", str(root / "annotations" / "test.json")]) == 0
    assert json.loads((root / "annotations" / "test.json").read_text())["annotations"] == data["annotations"]
    assert validate_dataset(root) == (["test"], [])
    capsys.readouterr()
    out = tmp_path / "visible.json"
    assert cli.main(["evaluate", "--method", "visible", "--protocol", "given-visible", "--data", str(root),
                     "--split", "test", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    per_category = {"bottle": (1 + 120 / 144) / 2, "box": 132 / 168, "cup": (1 + 112 / 120) / 2}
    assert result["miou"] == pytest.approx(sum(per_category.values()) / 3, abs=1e-6)
    assert {name: figures["miou"] for name, figures in result["per_category"].items()} == pytest.approx(
        per_category, abs=1e-6)
    assert result["occluded_miou"] == 0.0 and result["num_instances"] == 5 and result["num_images"] == 2
    assert_visible_baseline_figures(result, root / "annotations" / "test.json")


def test_cli_unknown_method(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "x.json"
    rc = cli.main(["evaluate", "--method", "nope", "--data", str(tiny_dataset), "--json", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "convex-hull" in err
    assert not out.exists()


def test_detector_methods_load_exported_weights(tiny_dataset, tmp_path):
    detector = pytest.importorskip("amodal3d.models.detector")
    paths = {}
    for heads in ("visible", "amodal"):
        config = detector.DetectorConfig(heads=heads, backbone="mobilenet_v3_small", min_size=96, max_size=96)
        paths[heads] = tmp_path / f"det-{heads}"
        detector.save_detector(detector.build_detector(config), paths[heads])
    weights = {h: str(p) + ".safetensors" for h, p in paths.items()}
    assert build_predictor("maskrcnn-amodal", weights=weights["amodal"]).name == "maskrcnn-amodal"
    with pytest.raises(WeightsError, match="heads='visible'"):
        build_predictor("orcnn", weights=weights["visible"])
    with pytest.raises(WeightsError, match="heads='amodal'"):
        build_predictor("convex-hull", weights=weights["amodal"])
    # End-to-end: the visible baseline post-processes the (untrained) detector's visible masks.
    predictor = build_predictor("visible", weights=weights["visible"])
    result = evaluate(predictor, tiny_dataset, "test", "end-to-end", limit=2, progress=False)
    _check_json(result)
    assert result["num_images"] == 2 and result["method"] == "visible"
    assert 0.0 <= result["miou"] <= 1.0 and result["matching"]["on"] == "visible"


def test_evaluation_keeps_every_object_the_detector_proposes():
    from amodal3d.models.detector import DetectorConfig

    # docs/metrics.md: end to end, methods keep detections down to the detector's own score floor
    assert harness.EVAL_SCORE_THRESHOLD == DetectorConfig().box_score_thresh
    assert build_predictor("maskrcnn-amodal").score_threshold == harness.EVAL_SCORE_THRESHOLD
    assert build_predictor("maskrcnn-amodal", score_threshold=0.3).score_threshold == 0.3


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "nan"])
def test_cli_rejects_a_score_threshold_outside_0_1(tiny_dataset, tmp_path, capsys, threshold):
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit, match="2"):  # refused by argparse, before anything runs
        cli.main(["evaluate", "--method", "maskrcnn-amodal", "--data", str(tiny_dataset), "--json", str(out),
                  "--score-threshold", threshold])
    err = capsys.readouterr().err
    assert "argument --score-threshold: expected a " in err and f"got '{threshold}'" in err and not out.exists()


def test_per_instance_scores_reproduce_the_summary(disc_dataset):
    result = evaluate(ConvexHullOf(), disc_dataset, "test", "given-visible", progress=False)
    inst = {k: np.asarray(v) for k, v in result["instances"].items()}
    assert len(inst["image_id"]) == result["num_instances"] == 7
    assert sorted(set(inst["image_id"].tolist())) == [1, 2, 3]
    assert category_averaged(inst["amodal_iou"], inst["category_id"]) == pytest.approx(result["miou"], abs=1e-6)
    occ = inst["occlude_rate"] >= OCCLUDED_MIN_RATE
    assert category_averaged(inst["occluded_iou"][occ], inst["category_id"][occ]) == pytest.approx(
        result["occluded_miou"], abs=1e-6)
    assert inst["matched"].all()


def test_cli_compare_two_results(tiny_dataset, tmp_path, capsys):
    paths = {}
    for method in ("convex-hull", "visible"):
        paths[method] = tmp_path / f"{method}.json"
        assert cli.main(["evaluate", "--method", method, "--protocol", "given-visible", "--data", str(tiny_dataset),
                         "--split", "test", "--json", str(paths[method]), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp" / "hull_vs_visible.json"
    assert cli.main(["compare", str(paths["convex-hull"]), str(paths["visible"]), "--resamples", "200",
                     "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "convex-hull (given-visible) − visible (given-visible)" in printed and "occluded_miou" in printed
    comparison = json.loads(out.read_text())
    hull, visible = (json.loads(p.read_text()) for p in paths.values())
    assert comparison["miou"]["difference"] == pytest.approx(hull["miou"] - visible["miou"], abs=1e-5)
    assert comparison["miou"]["low"] <= comparison["miou"]["difference"] <= comparison["miou"]["high"]
    occluded = comparison["occluded_miou"]  # the hull finds some hidden pixels, the visible masks none
    assert occluded["difference"] == pytest.approx(hull["occluded_miou"], abs=1e-5) and occluded["low"] >= 0.0


def test_cli_compare_names_the_file_and_the_problem(tiny_dataset, tmp_path, capsys):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    for path, limit in ((one, "1"), (two, "2")):
        assert cli.main(["evaluate", "--method", "visible", "--protocol", "given-visible", "--data",
                         str(tiny_dataset), "--limit", limit, "--json", str(path), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(one), str(two)]) == 2
    assert "different ground truth: num_images 1 against 2" in capsys.readouterr().err
    old = json.loads(one.read_text())
    del old["instances"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert cli.main(["compare", str(tmp_path / "old.json"), str(one)]) == 2
    assert f"{tmp_path / 'old.json'}: no per-instance scores" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert cli.main(["compare", str(tmp_path / "bad.json"), str(one)]) == 2
    assert f"{tmp_path / 'bad.json'}: not a JSON file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # refused by argparse, before any file is read
        cli.main(["compare", str(one), str(one), "--level", "95"])
    assert "argument --level: expected a number in (0.0, 1.0), got '95'" in capsys.readouterr().err
    assert cli.main(["compare", str(tmp_path / "missing.json"), str(one)]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err


def test_given_visible_hands_over_only_this_models_categories(tiny_dataset, tmp_path):
    """Given-visible, the ground truth's category ids reach the predictor only when the dataset names
    them as this project does; otherwise (COCOA, KINS, class-agnostic) the predictor gets
    UNKNOWN_CATEGORY and names each instance itself. Scoring uses the ground truth's categories either way."""
    from amodal3d.structures import UNKNOWN_CATEGORY

    class Recording(VisibleAsAmodal):
        def __init__(self):
            super().__init__()
            self.seen = []

        def predict(self, image, given=None):
            self.seen.append(np.asarray(given.labels).copy())
            return super().predict(image, given)

    renamed = tmp_path / "renamed"
    shutil.copytree(tiny_dataset, renamed)
    path = renamed / "annotations" / "test.json"
    data = json.loads(path.read_text())
    data["categories"] = [{**c, "name": f"thing {c['id']}"} for c in data["categories"]]
    path.write_text(json.dumps(data))
    ours, theirs = Recording(), Recording()
    a = evaluate(ours, tiny_dataset, "test", "given-visible", progress=False)
    b = evaluate(theirs, renamed, "test", "given-visible", progress=False)
    assert all((labels >= 1).all() for labels in ours.seen) and any(len(labels) for labels in ours.seen)
    assert all((labels == UNKNOWN_CATEGORY).all() for labels in theirs.seen)
    assert a["amodal_ap"] == b["amodal_ap"] and a["miou"] == b["miou"]
