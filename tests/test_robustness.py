"""Bad input on every input path answers with a clear error naming the file, or a correct result.

docs/robustness.md lists each input path x bad case with the test that proves it; cases tested
elsewhere are named there (test_data, test_engine, test_pipeline)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from amodal3d.cli import main
from amodal3d.data.dataset import AmodalDataset, read_image
from amodal3d.data.generate import generate
from amodal3d.data.meshes import load_mesh_file
from amodal3d.data.readers import convert
from amodal3d.data.schema import categories_json
from amodal3d.data.validate import validate_dataset
from amodal3d.errors import DataError
from amodal3d.masks import encode_rle
from conftest import tiny_config


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()


RGB = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("name, payload", [
    ("truncated.png", _png_bytes(RGB)[:80]),
    ("truncated.jpg", (lambda b: (Image.fromarray(RGB).save(b, format="JPEG"), b.getvalue()[:200])[1])(
        io.BytesIO())),
    ("text.png", b"hello, not an image"),
    ("empty.jpg", b""),
])
def test_corrupt_images_are_named(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(DataError, match=f"{path}: cannot read the image"):
        read_image(path)


def test_image_modes_become_rgb(tmp_path):
    grey = RGB[..., 0]
    cases = {
        "grey.png": (_png_bytes(grey), np.repeat(grey[..., None], 3, axis=2)),
        "rgba.png": (_png_bytes(np.dstack([RGB, np.full(grey.shape, 7, np.uint8)])), RGB),
        "palette.png": (_png_bytes(RGB, "P"), np.array(Image.fromarray(RGB).convert("P").convert("RGB"))),
        "deep16.png": (_png_bytes(grey.astype(np.uint16) * 257), None),
        "one.png": (_png_bytes(RGB[:1, :1]), RGB[:1, :1]),
    }
    for name, (payload, expected) in cases.items():
        (tmp_path / name).write_bytes(payload)
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.shape == (*grey.shape[:2], 3) if name != "one.png" \
            else image.shape == (1, 1, 3)
        if expected is not None:
            np.testing.assert_array_equal(image, expected, err_msg=name)
    deep = read_image(tmp_path / "deep16.png")[..., 0].astype(int)  # 16-bit scaled by its maximum
    np.testing.assert_allclose(deep, grey.astype(int) * 255 / grey.max(), atol=1)


def test_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("L", (10000, 10000)).save(path)  # 100 megapixels: refused before decoding
    with pytest.raises(DataError, match=r"huge.png: 10000x10000 image is over the 40,000,000-pixel limit"):
        read_image(path)
    monkeypatch.setenv("AMODAL3D_MAX_PIXELS", "100")
    with pytest.raises(DataError, match="over the 100-pixel limit"):
        read_image(_write(tmp_path / "small.png", _png_bytes(RGB)))


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def test_predict_runs_the_good_images_and_names_the_bad(tmp_path, capsys, monkeypatch):
    """Shipped model, end to end: a 1x1, a palette and a grey image run; truncated and oversized files
    are reported by name; the results file holds only the good images."""
    folder = tmp_path / "images"
    folder.mkdir()
    _write(folder / "one.png", _png_bytes(RGB[:1, :1]))
    _write(folder / "palette.png", _png_bytes(RGB, "P"))
    _write(folder / "grey.jpg", (lambda b: (Image.fromarray(RGB[..., 1]).save(b, format="JPEG"), b.getvalue())[1])(
        io.BytesIO()))
    _write(folder / "truncated.png", _png_bytes(RGB)[:70])
    _write(folder / "big.png", _png_bytes(np.zeros((40, 40), np.uint8)))
    monkeypatch.setenv("AMODAL3D_MAX_PIXELS", "1000")  # big.png (1600 pixels) stands for a huge image
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--no-overlays"]) == 1  # 1: some image failed
    printed = capsys.readouterr().out
    assert "3 image(s)" in printed and "2 failed" in printed
    assert f"failed: {folder / 'truncated.png'}: cannot read the image" in printed
    assert f"failed: {folder / 'big.png'}: 40x40 image is over the 1,000-pixel limit" in printed
    results = json.loads((out / "results.json").read_text())
    assert {Path(r["file_name"]).name for r in results} <= {"one.png", "palette.png", "grey.jpg"}


def test_predict_empty_folder_and_missing_cuda(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "holds no images" in capsys.readouterr().err
    _write(tmp_path / "a.png", _png_bytes(RGB))
    if not torch.cuda.is_available():
        assert main(["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
        assert "--device cuda: CUDA is not available" in capsys.readouterr().err


# ------------------------------------------------------------------------------ external visible masks
@pytest.mark.parametrize("segmentation, category, message", [
    ([[2, 2, 20, 2]], 3, "annotation 1: a polygon with fewer than 3 points"),
    (encode_rle(np.ones((10, 10), bool)), 3, "annotation 1: RLE size [10, 10] disagrees with the image size"),
    ([[2, 2, 20, 2, 20, 20]], 99, "category id(s) [99] unknown to this model"),
    (None, 3, "segmentation is neither polygons nor RLE"),
])
def test_predict_visible_json_errors_name_the_annotation(tmp_path, capsys, segmentation, category, message):
    image = _write(tmp_path / "a.png", _png_bytes(RGB))
    _write(tmp_path / "b.png", _png_bytes(RGB))
    visible = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": category, "segmentation": segmentation},
                               {"id": 2, "image_id": 2, "category_id": 3,
                                "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]]}],
               "categories": categories_json()}  # ids named as this project's (else step 1 names the masks)
    path = _write(tmp_path / "visible.json", json.dumps(visible).encode())
    out = tmp_path / "out"
    assert main(["predict", str(image), str(tmp_path / "b.png"), "--visible", str(path), "--out", str(out),
                 "--no-overlays"]) == 1
    printed = capsys.readouterr().out
    assert "1 image(s), 1 instance(s), 1 failed" in printed
    assert any(line.startswith(f"  failed: {image}: ") for line in printed.splitlines())
    assert message in printed, printed


def test_predict_visible_json_of_another_taxonomy_is_named_by_step_1(tmp_path, capsys):
    """Masks labelled in another taxonomy (here COCO's: person 1, car 3, and an id 99) are never read as
    this model's categories (1 would be airplane): step 1's crop head names each."""
    image = _write(tmp_path / "a.png", _png_bytes(RGB))
    square = [[2, 2, 20, 2, 20, 20, 2, 20]]
    visible = {"images": [{"id": 1, "file_name": "a.png"}],
               "annotations": [{"id": k, "image_id": 1, "category_id": c, "segmentation": square}
                               for k, c in enumerate((1, 3, 99), 1)],
               "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 99, "name": "x"}]}
    path = _write(tmp_path / "visible.json", json.dumps(visible).encode())
    assert main(["predict", str(image), "--visible", str(path), "--out", str(tmp_path / "out"), "--no-overlays"]) == 0
    assert "1 image(s), 3 instance(s), 0 failed" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert all(1 <= r["category_id"] <= 13 for r in results) and len(results) == 3


def test_predict_visible_json_malformed(tmp_path, capsys):
    image = _write(tmp_path / "a.png", _png_bytes(RGB))
    bad = _write(tmp_path / "visible.json", b'{"images": [')
    assert main(["predict", str(image), "--visible", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert f"{bad}: malformed JSON" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ annotation files
def test_absolute_file_name_is_refused(tiny_dataset, tmp_path):
    root = tmp_path / "abs"
    shutil.copytree(tiny_dataset, root)
    path = root / "annotations" / "test.json"
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = str((root / "images" / "test" / data["images"][0]["file_name"]).resolve())
    path.write_text(json.dumps(data))
    _, violations = validate_dataset(root, ["test"])
    assert any("points outside the image folder" in str(v) for v in violations)
    with pytest.raises(DataError, match="points outside the image folder"):
        AmodalDataset(root, "test")[0]


def test_duplicate_image_ids_are_named(tiny_dataset, tmp_path):
    root = tmp_path / "dup"
    shutil.copytree(tiny_dataset, root)
    path = root / "annotations" / "test.json"
    data = json.loads(path.read_text())
    data["images"].append(dict(data["images"][0]))
    path.write_text(json.dumps(data))
    _, violations = validate_dataset(root, ["test"])
    assert any("duplicate image id" in str(v) and str(path) in str(v) for v in violations)


# ------------------------------------------------------------------------------------------ mesh folders
def test_non_manifold_meshes_are_accepted_and_rendered(tmp_path):
    """ShapeNet meshes are often open or non-manifold; ray casting needs neither closedness nor
    manifoldness, so such a mesh loads and a scene renders from it."""
    box = trimesh.creation.box()
    fin = trimesh.Trimesh([[0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [1.2, 0.0, 0.9]], [[0, 1, 2]])  # 3 faces on an edge
    mesh = trimesh.util.concatenate([trimesh.Trimesh(box.vertices, box.faces[2:]), fin])  # open + non-manifold
    assert not mesh.is_watertight
    for category in ("chair", "car"):
        (tmp_path / "meshes" / category).mkdir(parents=True)
        for k in range(4):  # a real mesh's split is a hash of its name: four give the train split some
            mesh.export(tmp_path / "meshes" / category / f"odd{k}.obj")
    assert len(load_mesh_file(tmp_path / "meshes" / "chair" / "odd0.obj").faces) == len(mesh.faces)
    out = tmp_path / "data"
    config = tiny_config(out, shapes=str(tmp_path / "meshes"), splits={"train": 2})
    generate(config, workers=1, progress=False)
    _, violations = validate_dataset(out, ["train"])
    assert not violations and len(json.loads((out / "annotations" / "train.json").read_text())["annotations"]) >= 2


# ------------------------------------------------------------------------- KINS / D2SA annotation files
def _kins(edit=None) -> dict:
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 16}],
            "categories": [{"id": 1, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "a_segm": square, "i_segm": square}]}
    if edit is not None:
        edit(data)
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][0].update(category_id=7), "annotation 1 has unknown category id 7"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate annotation id 1"),
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 1"),
    (lambda d: d["images"][0].update(file_name="../../etc/passwd"), "points outside the image folder"),
    (lambda d: d["images"][0].update(file_name="/etc/passwd"), "points outside the image folder"),
    (lambda d: d["images"][0].pop("height"), "an entry of images lacks height"),
    (lambda d: d["annotations"][0].update(a_segm=[[1, 1, 5, 5]]), "a polygon with fewer than 3 points"),
    (lambda d: d["annotations"][0].update(a_segm=encode_rle(np.ones((4, 4), bool))),
     "RLE size [4, 4] disagrees with the image size [16, 16]"),
    (lambda d: d["annotations"][0].update(image_id=5), "refers to unknown image 5"),
])
def test_convert_refuses_bad_coco_style_files(tmp_path, edit, message):
    path = tmp_path / "kins.json"
    path.write_text(json.dumps(_kins(edit)))
    with pytest.raises(DataError) as error:
        convert(path, "kins")
    assert str(error.value).startswith(str(path)) and message in str(error.value), str(error.value)
    path.write_text(json.dumps(_kins()))
    assert len(convert(path, "kins")["annotations"]) == 1  # the unedited file converts
