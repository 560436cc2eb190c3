"""The data engine on small mesh collections (issue 30): a split draws only the categories that have meshes
in it, and a scene whose objects all drop out (a broken mesh, nothing visible) is drawn again, a bounded
number of times, before a clear error naming the split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from amodal3d.cli import main
from amodal3d.data.meshes import _split_of, open_mesh_source
from amodal3d.data.scene import SCENE_DRAWS, SceneConfig, render_scene
from amodal3d.errors import MeshError

SMALL = ["--size", "40", "--workers", "1", "--quiet", "--seed", "0"]


def _collection(root: Path, broken: tuple[str, ...] = ()) -> Path:
    """chair/m0..m3 and car/m0 fall in train by the hash of their paths, car/m4 (and chair/m12) in test:
    the test split has cars only. The files named in ``broken`` are not meshes."""
    names = ["chair/m0.obj", "chair/m1.obj", "chair/m2.obj", "chair/m3.obj", "car/m0.obj", "car/m4.obj", *broken]
    for k, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name in broken:
            (root / name).write_text("not a mesh\n")
        else:
            trimesh.creation.box(extents=(1.0, 0.5 + 0.1 * k, 0.4)).export(root / name)
    return root


def _test_split(out: Path) -> tuple[list[dict], list[dict], dict[int, str]]:
    data = json.loads((out / "annotations" / "test.json").read_text())
    return data["images"], data["annotations"], {c["id"]: c["name"] for c in data["categories"]}


def test_a_split_draws_only_the_categories_with_meshes_in_it(tmp_path, capsys):
    meshes = _collection(tmp_path / "meshes")
    assert [_split_of(n) for n in ("chair/m0.obj", "car/m0.obj", "car/m4.obj", "chair/m12.obj")] == \
        ["train", "train", "test", "test"]  # the hash the collection relies on
    source = open_mesh_source(meshes)
    assert set(source.categories) == {"chair", "car"}
    assert source.categories_in("test") == ("car",)
    assert set(source.categories_in("train")) == {"chair", "car"} and source.categories_in("val") == ()

    # one object per scene: before the fix, every scene that drew a chair for the test split had no object
    out = tmp_path / "data"
    assert main(["generate", "--shapes", str(meshes), "--out", str(out), "--split", "test=6", "--objects", "1-1",
                 *SMALL]) == 0, capsys.readouterr().err
    images, annotations, names = _test_split(out)
    assert len(images) == 6 and len(annotations) == 6
    assert sorted(a["image_id"] for a in annotations) == [1, 2, 3, 4, 5, 6]
    assert {a["mesh_id"] for a in annotations} == {"car/m4.obj"}
    assert {names[a["category_id"]] for a in annotations} == {"car"}


def test_a_scene_whose_objects_all_drop_out_is_drawn_again(tmp_path, capsys):
    """chair/m12.obj (test split) is broken: a scene that drew it alone lost its only object."""
    meshes = _collection(tmp_path / "meshes", broken=("chair/m12.obj",))
    assert open_mesh_source(meshes).categories_in("test") == ("car", "chair")  # not known broken yet
    out = tmp_path / "data"
    with pytest.warns(UserWarning, match=r"skipping a broken mesh: .*chair/m12\.obj: the file holds no triangle mesh"):
        assert main(["generate", "--shapes", str(meshes), "--out", str(out), "--split", "test=6", "--objects", "1-1",
                     *SMALL]) == 0, capsys.readouterr().err
    images, annotations, _ = _test_split(out)
    assert len(images) == 6 and sorted(a["image_id"] for a in annotations) == [1, 2, 3, 4, 5, 6]
    assert {a["mesh_id"] for a in annotations} == {"car/m4.obj"}


def test_a_split_whose_meshes_all_fail_is_named(tmp_path, capsys):
    meshes = tmp_path / "meshes"
    (meshes / "chair").mkdir(parents=True)
    for k in range(2):
        (meshes / "chair" / f"m{k}.obj").write_text("not a mesh\n")
    with pytest.warns(UserWarning, match="skipping a broken mesh"):
        assert main(["generate", "--shapes", str(meshes), "--out", str(tmp_path / "data"), "--split", "test=1",
                     "--shapes-split", "test", *SMALL]) == 2
    assert capsys.readouterr().err == \
        f"amodal3d: error: no mesh could be placed for split 'test': {meshes} has no mesh in it that loads\n"


def test_scene_draws_are_bounded_and_the_error_names_the_split():
    """Nothing can stay visible enough (more than 100 %): every draw loses all its objects."""
    config = SceneConfig(size=32, min_objects=1, max_objects=1, min_visible_fraction=1.5)
    with pytest.raises(MeshError, match=rf"^no mesh could be placed for split 'val': {SCENE_DRAWS} draws of a scene "
                                        r"left no object visible \(the procedural meshes\)$"):
        render_scene(np.random.default_rng(0), open_mesh_source("procedural"), "val", config)


def test_procedural_scenes_draw_as_before():
    """Every category has meshes in every split: the draws, hence the datasets, are those of before."""
    source = open_mesh_source("procedural")
    assert source.categories_in("test") == source.categories
    scene = render_scene(np.random.default_rng([3, 1]), source, "test", SceneConfig(size=48))
    # as drawn before the change (the image's SHA-1 too)
    assert [a["mesh_id"] for a in scene.annotations] == \
        ["procedural/display/test/0030", "procedural/chair/test/0027", "procedural/car/test/0015"]
    assert hashlib.sha1(scene.image.tobytes()).hexdigest() == "c808feaa439dd2207cad49fff2b1b6df807a8316"
