"""Hardening of every path that reads a mask (issue 33, round 2): polygons and RLE are checked by one
layer (``amodal3d.masks``) before pycocotools sees them (its C code segfaults on NaN coordinates and
writes past its buffer on overlong RLE counts); ids and sizes are type-checked; KINS needs both
masks; float TIFFs are scaled; a bad AMODAL3D_MAX_PIXELS is named."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from amodal3d.categories import DEFAULT
from amodal3d.cli import main
from amodal3d.data.dataset import AmodalDataset, load_annotation_file, read_image
from amodal3d.data.readers import convert, segmentation_mask
from amodal3d.data.schema import categories_json
from amodal3d.data.validate import validate_dataset
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.masks import decode_rle, encode_rle, polygons_to_mask, rle_counts, rle_problem, rle_problems

SQUARE = [2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]
BAD_COORDINATES = [
    (float("nan"), "a polygon coordinate that is NaN or infinite (nan)"),
    (float("inf"), "a polygon coordinate that is NaN or infinite (inf)"),
    (3e9, "a polygon coordinate x = 3e+09 far outside the 16x16 image (x must lie in [-32, 48])"),
    (-3e9, "a polygon coordinate x = -3e+09 far outside the 16x16 image (x must lie in [-32, 48])"),
    ("12", "a polygon coordinate that is not a number ('12')"),
    (None, "a polygon coordinate that is not a number (None)"),
    (True, "a polygon coordinate that is not a number (True)"),
]


def _with(x: object) -> list:
    """SQUARE with its third coordinate (an x) replaced."""
    return [SQUARE[0], SQUARE[1], x, *SQUARE[3:]]


def _runs(mask: np.ndarray) -> list[int]:
    """Reference run lengths of a mask (column-major, starting with 0s), by plain numpy."""
    flat = mask.T.reshape(-1).astype(np.int8)
    runs = np.diff(np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


def _compressed(runs: list[int], height: int, width: int) -> str:
    """pycocotools' compressed string of any run lengths (it does not check their sum)."""
    return mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)["counts"].decode()


# ------------------------------------------------------------------------ compressed counts vs pycocotools
def test_rle_counts_agree_with_pycocotools_on_random_masks():
    rng = np.random.default_rng(7)
    for trial in range(200):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        mask = rng.random((h, w)) < rng.random()
        if trial % 4 == 0:  # long runs: numbers of several characters
            mask = np.zeros((h, w), bool)
            mask[rng.integers(0, h):, rng.integers(0, w):] = True
        counts = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
        assert rle_counts(counts).tolist() == _runs(mask), trial
        assert rle_counts(counts.decode()).tolist() == _runs(mask), trial
    for _ in range(200):  # any run lengths, through pycocotools' encoder and back
        runs = [int(v) for v in rng.integers(1, int(rng.choice([3, 40, 5000, 10**7])), int(rng.integers(1, 40)))]
        runs[0] = int(rng.integers(0, 3))
        assert rle_counts(_compressed(runs, 1, sum(runs))).tolist() == runs, runs
    # the vectorised batch gives each string's answer, as one string alone does
    items = [(encode_rle(rng.random((9, 7)) < 0.5), (9, 7)) for _ in range(30)]
    items[4] = ({"size": [9, 7], "counts": _compressed([5, 3], 9, 7)}, (9, 7))
    items[9] = ({"size": [9, 7], "counts": "0P"}, (9, 7))
    assert rle_problems(items) == [rle_problem(r, s) for r, s in items]
    assert rle_problems(items)[4] == "counts sum to 8 pixels, not 9x7 = 63 (a truncated mask)"
    assert rle_problems(items)[9] == "counts end inside a number (a truncated string)"
    assert sum(p is not None for p in rle_problems(items)) == 2


@pytest.mark.parametrize("rle, problem", [
    ({"size": [4, 4], "counts": [3, 10]}, "counts sum to 13 pixels, not 4x4 = 16 (a truncated mask)"),
    ({"size": [4, 4], "counts": [3, 10, 9]}, "counts sum to 22 pixels, not 4x4 = 16 (an overlong mask)"),
    ({"size": [4, 4], "counts": [3, -2, 15]}, "counts hold a negative run (-2 at run 2)"),
    ({"size": [4, 4], "counts": [3, "13"]}, "counts list holds '13', not an integer run length"),
    ({"size": [4, 4], "counts": [10**30, 1]}, f"counts sum to {10**30 + 1} pixels, not 4x4 = 16 (an overlong mask)"),
    ({"size": [4, 4], "counts": _compressed([3, 10], 4, 4)},
     "counts sum to 13 pixels, not 4x4 = 16 (a truncated mask)"),
    ({"size": [4, 4], "counts": _compressed([3, 10, 9], 4, 4)},
     "counts sum to 22 pixels, not 4x4 = 16 (an overlong mask)"),
    ({"size": [4, 4], "counts": "3#"}, "counts hold a character outside '0'..'o' ('#')"),
    ({"size": [4, 4], "counts": "3ooooooo0"}, "counts hold a number of more than 6 characters (over 2**29)"),
    ({"size": [4, 4], "counts": 16}, "counts is 16, neither a compressed string nor a list of run lengths"),
    ({"size": [4, -4], "counts": "0"}, "size [4, -4] is not two non-negative integers [height, width]"),
    ({"size": [4.0, 4], "counts": "0"}, "size [4.0, 4] is not two non-negative integers [height, width]"),
    ({"size": "4x4", "counts": "0"}, "size '4x4' is not two non-negative integers [height, width]"),
    ({"counts": "0"}, "lacks 'size'"),
    ([[1, 2]], "is not a COCO RLE (a list, not an object with size and counts)"),
])
def test_bad_rles_are_named_and_never_decoded(rle, problem):
    assert rle_problem(rle) == problem
    with pytest.raises(DataError, match=re.escape(f"invalid COCO RLE: {problem}")):
        decode_rle(rle)


# --------------------------------------------------------------------------------- polygon coordinates
def test_nan_polygon_no_longer_kills_the_process():
    """Before this layer, pycocotools segfaulted on these coordinates (the process died with SIGSEGV);
    run in a child process so that a crash is a failure, not a dead test run."""
    code = ("from amodal3d.data.readers import segmentation_mask\n"
            "from amodal3d.errors import DataError\n"
            "for x in (float('nan'), float('inf'), 3e9):\n"
            "    try:\n"
            "        segmentation_mask([[2.0, 2.0, x, 2.0, 12.0, 12.0]], 16, 16, 'v.json: annotation 7')\n"
            "    except DataError as error:\n"
            "        print(error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.splitlines() == [
        "v.json: annotation 7: a polygon coordinate that is NaN or infinite (nan)",
        "v.json: annotation 7: a polygon coordinate that is NaN or infinite (inf)",
        "v.json: annotation 7: a polygon coordinate x = 3e+09 far outside the 16x16 image (x must lie in [-32, 48])",
    ]


@pytest.mark.parametrize("x, problem", BAD_COORDINATES)
def test_bad_polygon_coordinates_are_refused_by_segmentation_mask(x, problem):
    with pytest.raises(DataError, match=f"^{re.escape('v.json: annotation 7: ' + problem)}$"):
        segmentation_mask([_with(x)], 16, 16, "v.json: annotation 7")
    with pytest.raises(DataError, match=re.escape(f"invalid polygon: {problem}")):
        polygons_to_mask([_with(x)], 16, 16)


def test_bad_rle_is_refused_by_segmentation_mask():
    with pytest.raises(DataError, match=r"^v.json: annotation 3: RLE counts sum to 120 pixels, not 16x16 = 256 "
                                        r"\(a truncated mask\)$"):
        segmentation_mask({"size": [16, 16], "counts": _compressed([20, 100], 16, 16)}, 16, 16, "v.json: annotation 3")


def test_out_of_frame_but_sane_coordinates_are_clipped():
    mask = segmentation_mask([[-30.0, -30.0, 47.0, -30.0, 47.0, 8.0, -30.0, 8.0]], 16, 16, "v.json")
    expected = np.zeros((16, 16), bool)
    expected[:8, :] = True  # the rectangle clipped to the frame (rows 0..7)
    np.testing.assert_array_equal(mask, expected)


def test_polygon_coordinate_count_messages():
    with pytest.raises(DataError, match=r"^v.json: a polygon with an odd number of coordinates \(159\)$"):
        segmentation_mask([list(range(159))], 200, 200, "v.json")
    with pytest.raises(DataError, match=r"^v.json: a polygon with fewer than 3 points \(2\)$"):
        segmentation_mask([[1, 1, 5, 5]], 16, 16, "v.json")
    with pytest.raises(DataError, match=r"^v.json: segmentation is an empty polygon list$"):
        segmentation_mask([], 16, 16, "v.json")
    with pytest.raises(DataError, match=r"^v.json: a polygon that is 'abc', not a list of coordinates$"):
        segmentation_mask([SQUARE, "abc"], 16, 16, "v.json")


# ------------------------------------------------------------------------------------------ COCOA native
def _cocoa(tmp_path: Path, first_segmentation=None, visible_mask=None) -> Path:
    folder = tmp_path / "cocoa"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "1.png")
    near = {"segmentation": SQUARE if first_segmentation is None else first_segmentation, "name": "box ",
            "order": "1", "isStuff": "0"}
    far = {"segmentation": [0.0, 0.0, 8.0, 0.0, 8.0, 8.0, 0.0, 8.0], "name": "cup", "order": "2"}
    if visible_mask is not None:
        far["visible_mask"] = visible_mask
    (folder / "1.json").write_text(json.dumps({"image_id": 1, "regions": [near, far]}))
    return folder


@pytest.mark.parametrize("x, problem", BAD_COORDINATES)
def test_convert_cocoa_refuses_bad_coordinates(tmp_path, x, problem):
    folder = _cocoa(tmp_path, first_segmentation=_with(x))
    message = f"{folder / '1.json'}: image 1 region 1: {problem}"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        convert(folder)


def test_convert_cocoa_refuses_a_visible_mask_cut_short(tmp_path, capsys):
    """A COCOA visible mask cut short used to decode silently wrong (occlusion 0.98 for 0.25)."""
    square = polygons_to_mask([[0.0, 0.0, 8.0, 0.0, 8.0, 8.0, 0.0, 8.0]], 16, 16)
    visible = square.copy()
    visible[:4, :4] = False  # a quarter hidden behind the near box
    runs = _runs(visible)
    good = _cocoa(tmp_path / "good", visible_mask=encode_rle(visible))
    cut = _cocoa(tmp_path / "cut", visible_mask={"size": [16, 16], "counts": _compressed(runs[:-1], 16, 16)})
    data = convert(good)
    assert [a["occlude_rate"] for a in data["annotations"]] == [0.0, 0.25]
    out = tmp_path / "cut.json"
    assert main(["convert", str(cut), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"amodal3d: error: {cut / '1.json'}: image 1 region 2 (visible_mask): RLE counts sum to "
                   f"{sum(runs[:-1])} pixels, not 16x16 = 256 (a truncated mask)\n")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ KINS / D2SA
def _coco_style(kind: str, edit=None) -> dict:
    amodal, visible = ("a_segm", "i_segm") if kind == "kins" else ("segmentation", "visible_mask")
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 16}],
            "categories": [{"id": 1, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, amodal: [SQUARE], visible: [SQUARE]}]}
    if edit is not None:
        edit(data)
    return data


def _first(edit):
    """An edit of the first annotation, as an edit of the whole file."""
    return lambda data: edit(data["annotations"][0])


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("kind, key", [("kins", "a_segm"), ("kins", "i_segm"), ("d2sa", "segmentation"),
                                       ("d2sa", "visible_mask")])
@pytest.mark.parametrize("x, problem", BAD_COORDINATES[:3])
def test_convert_coco_style_refuses_bad_coordinates(tmp_path, kind, key, x, problem):
    path = _write_json(tmp_path / f"{kind}.json", _coco_style(kind, _first(lambda a: a.update({key: [_with(x)]}))))
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: annotation 1 ({key}): {problem}')}$"):
        convert(path, kind)


@pytest.mark.parametrize("kind, key, runs, problem", [
    ("kins", "a_segm", [20, 100], "RLE counts sum to 120 pixels, not 16x16 = 256 (a truncated mask)"),
    ("kins", "i_segm", [20, 100, 200], "RLE counts sum to 320 pixels, not 16x16 = 256 (an overlong mask)"),
    ("d2sa", "visible_mask", [20, 100], "RLE counts sum to 120 pixels, not 16x16 = 256 (a truncated mask)"),
])
@pytest.mark.parametrize("compressed", [True, False])
def test_convert_refuses_rle_counts_that_do_not_cover_the_mask(tmp_path, kind, key, runs, problem, compressed):
    rle = {"size": [16, 16], "counts": _compressed(runs, 16, 16) if compressed else runs}
    path = _write_json(tmp_path / f"{kind}.json", _coco_style(kind, _first(lambda a: a.update({key: rle}))))
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: annotation 1 ({key}): {problem}')}$"):
        convert(path, kind)


@pytest.mark.parametrize("kind, edit, problem", [
    ("kins", _first(lambda a: a.pop("i_segm")), "annotation 1 lacks i_segm (its visible segmentation)"),
    ("kins", _first(lambda a: a.pop("a_segm")), "annotation 1 lacks a_segm (its amodal segmentation)"),
    ("kins", _first(lambda a: a.update(i_segm=None)),
     "annotation 1 (i_segm): segmentation is neither polygons nor RLE"),
    ("d2sa", _first(lambda a: a.pop("segmentation")), "annotation 1 lacks segmentation (its amodal segmentation)"),
    ("kins", _first(lambda a: a.update(category_id="1")), "annotation 1: category_id '1' is not an integer id"),
    ("kins", _first(lambda a: a.update(image_id=1.0)), "annotation 1: image_id 1.0 is not an integer id"),
    ("kins", _first(lambda a: a.update(id=True)), "annotation True: id True is not an integer id"),
    ("kins", _first(lambda a: a.update(ico_id="front")), "annotation 1: ico_id 'front' is not a finite number"),
    ("kins", lambda d: d["images"][0].update(width="16"), "image 1: width '16' is not a positive integer"),
    ("kins", lambda d: d["images"][0].update(height=0), "image 1: height 0 is not a positive integer"),
    ("kins", lambda d: d["images"][0].update(id="1"), "image '1': id '1' is not an integer id"),
    ("kins", lambda d: d["categories"][0].update(id=None), "category None: id None is not an integer id"),
    ("kins", lambda d: d["annotations"].append(7), "an entry of annotations is 7, not an object"),
    ("kins", lambda d: d["images"][0].update(height=100000, width=100000),
     "image 1: 100000x100000 image is over the 40,000,000-pixel limit"),
])
def test_convert_coco_style_names_bad_entries(tmp_path, kind, edit, problem):
    path = _write_json(tmp_path / f"{kind}.json", _coco_style(kind, edit))
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: {problem}')}"):
        convert(path, kind)


def test_d2sa_without_visible_mask_is_unoccluded(tmp_path):
    """D2SA / COCOA-cls write ``visible_mask`` only for occluded objects: none means fully visible."""
    path = _write_json(tmp_path / "d2sa.json", _coco_style("d2sa", _first(lambda a: a.pop("visible_mask"))))
    (annotation,) = convert(path, "d2sa")["annotations"]
    assert annotation["occlude_rate"] == 0.0 and annotation["visible_segm"] == annotation["amodal_segm"]


# -------------------------------------------------------------------- annotation files (amodal3d schema)
def _tampered(tiny_dataset: Path, tmp_path: Path, edit) -> tuple[Path, Path, dict]:
    root = tmp_path / "tampered"
    shutil.copytree(tiny_dataset, root)
    path = root / "annotations" / "test.json"
    data = json.loads(path.read_text())
    first_image = data["images"][0]["id"]
    ann = next(a for a in data["annotations"] if a["image_id"] == first_image)
    edit(ann)
    path.write_text(json.dumps(data))
    return root, path, ann


def _cut_visible(ann: dict) -> None:
    h, w = ann["visible_segm"]["size"]
    runs = rle_counts(ann["visible_segm"]["counts"]).tolist()
    ann["visible_segm"] = {"size": [h, w], "counts": _compressed(runs[:-1], h, w)}
    ann["cut_total"] = sum(runs[:-1])


def test_truncated_rle_is_named_by_validate_dataset_show_and_evaluate(tiny_dataset, tmp_path, capsys):
    root, path, ann = _tampered(tiny_dataset, tmp_path, _cut_visible)
    problem = (f"visible_segm counts sum to {ann['cut_total']} pixels, not 96x96 = 9216 (a truncated mask)")
    where = f"{path}: image {ann['image_id']}, annotation {ann['id']}"
    # validate names the cause, not its symptoms (occlude_rate, visible outside amodal)
    _, violations = validate_dataset(root, ["test"])
    assert [str(v) for v in violations] == [f"{where}: {problem}"]
    # AmodalDataset loads (run lengths are checked per image) and names it when the image is read
    dataset = AmodalDataset(root, "test")
    with pytest.raises(DataError, match=f"^{re.escape(f'{where}: {problem}')}$"):
        dataset[0]
    with pytest.raises(DataError, match=f"^{re.escape(f'{where}: {problem}')}$"):
        load_annotation_file(path)  # the full check, as evaluate loads
    capsys.readouterr()
    assert main(["show", str(root), "--split", "test", "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {where}: {problem}\n"
    assert not (tmp_path / "grid.png").exists()
    assert main(["evaluate", "--method", "visible", "--protocol", "given-visible", "--data", str(root),
                 "--split", "test", "--json", str(tmp_path / "eval.json"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {where}: {problem}\n"
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("edit, problem", [
    (lambda a: a.update(category_id="3"), "annotation {id}: category_id '3' is not an integer id"),
    (lambda a: a.update(image_id=None), "annotation {id}: image_id None is not an integer id"),
    (lambda a: a.update(amodal_bbox=[0, 0, "5", 5]),
     "annotation {id}: amodal_bbox [0, 0, '5', 5] is not a box [x, y, width, height] of 4 finite numbers"),
    (lambda a: a.update(occlude_rate="0.5"), "annotation {id}: occlude_rate '0.5' is not a number"),
    (lambda a: a.update(viewpoint=[1, 2, 3]),
     "annotation {id}: viewpoint [1, 2, 3] is not an object of numbers azimuth, elevation, distance"),
    (lambda a: a.update(iscrowd="no"), "annotation {id}: iscrowd 'no' is not 0 or 1"),
    (lambda a: a.update(visible_segm=None),
     "image {image_id}, annotation {id}: visible_segm is not a COCO RLE (a null, not an object with size and counts)"),
    (lambda a: a.update(amodal_segm={"size": [96, 96], "counts": {"nested": ["garbage"]}}),
     "image {image_id}, annotation {id}: amodal_segm counts is {{'nested': ['garbage']}}, neither a compressed "
     "string nor a list of run lengths"),
    (lambda a: a.update(occluder_segm={"size": [96, 96], "counts": [9216, -1, 1]}),
     "image {image_id}, annotation {id}: occluder_segm counts hold a negative run (-1 at run 2)"),
])
def test_malformed_annotations_are_data_errors(tiny_dataset, tmp_path, capsys, edit, problem):
    root, path, ann = _tampered(tiny_dataset, tmp_path, edit)
    message = f"{path}: {problem.format(**ann)}"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        AmodalDataset(root, "test")[0]
    assert main(["show", str(root), "--split", "test", "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {message}\n"
    _, violations = validate_dataset(root, ["test"])
    assert any(str(v).startswith(str(path)) and problem.format(**ann).split(": ")[-1] in str(v)
               for v in violations), [str(v) for v in violations]


def test_string_category_id_is_not_called_unknown(tiny_dataset, tmp_path, capsys):
    root, path, ann = _tampered(tiny_dataset, tmp_path, lambda a: a.update(category_id="3"))
    assert main(["validate", str(root), "--split", "test"]) == 1
    out = capsys.readouterr().out
    assert f"annotation {ann['id']}: category_id '3' is not an integer id" in out and "unknown category" not in out


def test_missing_boxes_are_computed_from_the_masks(tiny_dataset, tmp_path):
    root, _, ann = _tampered(tiny_dataset, tmp_path, lambda a: (a.pop("amodal_bbox"), a.pop("visible_bbox")))
    original = AmodalDataset(tiny_dataset, "test")[0][1]
    _, target = AmodalDataset(root, "test")[0]
    np.testing.assert_array_equal(target["amodal_boxes"].numpy(), original["amodal_boxes"].numpy())
    np.testing.assert_array_equal(target["visible_boxes"].numpy(), original["visible_boxes"].numpy())


def test_image_of_another_size_than_annotated_is_named(tiny_dataset, tmp_path):
    root = tmp_path / "resized"
    shutil.copytree(tiny_dataset, root)
    data = load_annotation_file(root / "annotations" / "test.json")
    image = data["images"][0]
    Image.new("RGB", (40, 30)).save(root / "images" / "test" / image["file_name"])
    file = root / "images" / "test" / image["file_name"]
    with pytest.raises(DataError, match=re.escape(f"image {image['id']}: {file} is 40x30, the annotation says 96x96")):
        AmodalDataset(root, "test")[0]


# ------------------------------------------------------------------------------- predict --visible
def test_predict_visible_with_a_nan_coordinate_names_it_and_goes_on(tmp_path, capsys):
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for name in ("a.png", "b.png"):
        Image.fromarray(rgb).save(tmp_path / name)
    visible = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 3,
                                "segmentation": [[2.0, 2.0, float("nan"), 2.0, 20.0, 20.0, 2.0, 20.0]]},
                               {"id": 2, "image_id": 2, "category_id": 3, "segmentation": [[2, 2, 20, 2, 20, 20]]}],
               "categories": categories_json()}
    path = _write_json(tmp_path / "visible.json", visible)  # json writes the NaN as NaN, as a tool might
    assert "NaN" in path.read_text()
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--visible", str(path),
                 "--out", str(out), "--no-overlays"]) == 1  # 1: some image failed (the process lives on)
    printed = capsys.readouterr().out
    assert "1 image(s), 1 instance(s), 1 failed" in printed
    assert (f"  failed: {tmp_path / 'a.png'}: {path}: annotation 1: a polygon coordinate that is NaN or infinite "
            f"(nan)") in printed.splitlines()


# ------------------------------------------------------------------------------------------------ images
def test_float_tiffs_are_scaled(tmp_path):
    values = np.linspace(0.0, 1.0, 6 * 7, dtype=np.float32).reshape(6, 7)
    Image.fromarray(values, mode="F").save(tmp_path / "unit.tif")
    image = read_image(tmp_path / "unit.tif")
    assert image.dtype == np.uint8 and image.shape == (6, 7, 3)
    np.testing.assert_array_equal(image[..., 0], np.rint(values * 255).astype(np.uint8))
    np.testing.assert_array_equal(image[..., 2], image[..., 0])
    assert image.max() == 255 and image.min() == 0
    Image.fromarray(values * 1000.0 - 100.0, mode="F").save(tmp_path / "wide.tif")  # other ranges: by the max
    wide = read_image(tmp_path / "wide.tif")[..., 0]
    np.testing.assert_array_equal(wide, np.rint(np.clip(values * 1000 - 100, 0, None) * 255 / 900).astype(np.uint8))
    values[2, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'nan.tif'))}: the image holds NaN or infinite"):
        read_image(tmp_path / "nan.tif")


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e6", ""])
def test_bad_max_pixels_variable_is_named_not_blamed_on_the_image(tiny_dataset, tmp_path, monkeypatch, capsys,
                                                                  value):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    monkeypatch.setenv("AMODAL3D_MAX_PIXELS", value)
    message = (f"AMODAL3D_MAX_PIXELS={value!r} is not a positive integer (the largest image, in pixels, that "
               f"amodal3d reads; unset it for the default 40,000,000)")
    with pytest.raises(Amodal3dError, match=f"^{re.escape(message)}$") as error:
        read_image(tmp_path / "a.png")
    assert not isinstance(error.value, DataError)  # not a problem of the image
    assert main(["show", str(tiny_dataset), "--split", "test", "--out", str(tmp_path / "grid.png")]) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {message}\n"
    monkeypatch.setenv("AMODAL3D_MAX_PIXELS", "64")
    assert read_image(tmp_path / "a.png").shape == (8, 8, 3)


def test_odd_file_names_and_category_names_are_data_errors(tiny_dataset, tmp_path):
    root = tmp_path / "odd"
    shutil.copytree(tiny_dataset, root)
    path = root / "annotations" / "test.json"
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = "a\0b.png"  # a NUL byte: Path.resolve would raise ValueError
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=re.escape(f"{path}: image {data['images'][0]['id']}: file_name 'a\\x00b.png' "
                                                  f"is not a file name")):
        AmodalDataset(root, "test")[0]
    _, violations = validate_dataset(root, ["test"])
    assert [v.problem for v in violations] == ["file_name 'a\\x00b.png' is not a file name"]
    data["images"][0]["file_name"] = ["a.png"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=re.escape(f"{path}: image {data['images'][0]['id']}: file_name ['a.png'] "
                                                  f"is not a string")):
        AmodalDataset(root, "test")
    # a category name that is not a string never reaches a dict lookup (it would be unhashable)
    data["images"][0]["file_name"] = "x.png"
    data["categories"][0]["name"] = ["chair"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=re.escape(f"{path}: category 1: name ['chair'] is not a string")):
        load_annotation_file(path)
    assert not DEFAULT.names_ids_as(data["categories"])


GARBAGE = [None, True, "3", 3.5, -1, 10**30, float("nan"), [], {}, [1, "a"], {"a": [None]}, "",
           {"size": [1, 1], "counts": "1"}]


def test_random_garbage_in_an_annotation_file_is_a_data_error_or_loads(tiny_dataset, tmp_path):
    """Fuzz: any leaf of the file replaced by garbage (or deleted) gives an Amodal3dError or loads;
    never another exception (a traceback) and never a crash."""
    root = tmp_path / "fuzz"
    shutil.copytree(tiny_dataset, root)
    path = root / "annotations" / "test.json"
    base = json.loads(path.read_text())
    rng = np.random.default_rng(3)
    outcomes = set()
    for _ in range(100):
        data = json.loads(json.dumps(base))
        section = data[str(rng.choice(["images", "annotations", "annotations", "categories"]))]
        entry = section[int(rng.integers(len(section)))]
        key = str(rng.choice(sorted(entry)))
        if isinstance(entry[key], dict) and rng.random() < 0.5:  # one level down (masks, viewpoint)
            entry = entry[key]
            key = str(rng.choice(sorted(entry)))
        if rng.random() < 0.2:
            del entry[key]
        else:
            entry[key] = GARBAGE[int(rng.integers(len(GARBAGE)))]
        path.write_text(json.dumps(data))
        for read in (lambda: AmodalDataset(root, "test")[0], lambda: load_annotation_file(path),
                     lambda: validate_dataset(root, ["test"], check_images=False)):
            try:
                read()
                outcomes.add("loaded")
            except Amodal3dError:
                outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}


def test_a_stray_visible_pixel_never_joins_another_instances_occluder():
    from amodal3d.data.readers import _occluders

    near = np.zeros((8, 8), bool)
    near[2:6, 2:6] = True
    near_visible = near.copy()
    near_visible[0, 0] = True  # an annotator's stray pixel outside the nearer object's amodal mask
    far = np.zeros((8, 8), bool)
    far[3:8, 3:8] = True
    occluders = _occluders([near_visible, far & ~near], [near, far], [1.0, 2.0])
    np.testing.assert_array_equal(occluders[1], near)
    assert not occluders[0].any()
