"""The data engine: scene invariants, determinism, resume, readers, validation and clear errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from amodal3d import CATEGORY_NAMES
from amodal3d.cli import main
from amodal3d.data import generate as generate_module
from amodal3d.data.dataset import AmodalDataset, load_annotation_file
from amodal3d.data.generate import generate
from amodal3d.data.meshes import load_mesh_file, open_mesh_source, shapenet_front_yaw
from amodal3d.data.raycast import raycast_scene
from amodal3d.data.readers import convert
from amodal3d.data.scene import SceneConfig, render_scene
from amodal3d.data.validate import validate_dataset
from amodal3d.errors import DataError, MeshError
from amodal3d.geometry import focal_from_fov, intrinsics, project, transform_points
from amodal3d.masks import decode_rle, encode_rle, mask_to_bbox
from conftest import TINY_SCENE, tiny_config


def _scenes(n: int, config: SceneConfig = TINY_SCENE):
    source = open_mesh_source("procedural", seed=1)
    return [render_scene(np.random.default_rng(i), source, "train", config) for i in range(n)]


def test_scene_invariants():
    for scene in _scenes(6):
        anns = scene.annotations
        assert anns, "every scene keeps at least its nearest object"
        amodal = np.stack([decode_rle(a["amodal_segm"]) for a in anns])
        visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        occluder = np.stack([decode_rle(a["occluder_segm"]) for a in anns])
        assert not (visible & ~amodal).any(), "visible ⊆ amodal"
        assert visible.sum(0).max() <= 1, "visible masks of one image are disjoint"
        assert np.array_equal(visible.any(0), amodal.any(0)), "union visible = union amodal"
        assert not (occluder & visible).any(), "an instance does not occlude itself"
        for a, am, vi, oc in zip(anns, amodal, visible, occluder):
            assert a["area"] == am.sum()
            assert a["occlude_rate"] == pytest.approx(1 - vi.sum() / am.sum(), abs=1e-5)
            assert a["visible_area"] >= TINY_SCENE.min_visible_fraction * a["area"]
            assert a["amodal_bbox"] == mask_to_bbox(am) and a["visible_bbox"] == mask_to_bbox(vi)
            # hidden pixels are covered by the occluders' visible masks
            assert not ((am & ~vi) & ~oc).any()
        assert sorted(a["depth_order"] for a in anns) == list(range(1, len(anns) + 1))


def test_pose_reprojects_onto_amodal_mask():
    """The stored pose and intrinsics put the mesh exactly where the ray caster saw it."""
    source = open_mesh_source("procedural", seed=1)
    scene = _scenes(1)[0]
    K = torch.tensor(scene.camera["K"], dtype=torch.float64)
    for a in scene.annotations:
        mesh = source.load(a["mesh_id"])
        pose = a["pose"]
        verts = transform_points(torch.as_tensor(mesh.vertices) * pose["scale"],
                                 torch.tensor(pose["rotation"], dtype=torch.float64),
                                 torch.tensor(pose["translation"], dtype=torch.float64))
        uv, _ = project(verts, K)
        cast = raycast_scene([trimesh.Trimesh(verts.numpy(), mesh.faces, process=False)], K.numpy(),
                             TINY_SCENE.size, TINY_SCENE.size)
        assert np.array_equal(cast.amodal[0], decode_rle(a["amodal_segm"]))
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < TINY_SCENE.size) & (uv[:, 1] >= 0) & (uv[:, 1] < TINY_SCENE.size)
        x0, y0, w, h = a["amodal_bbox"]
        u, v = uv[inside, 0], uv[inside, 1]
        in_box = (u >= x0 - 1) & (u <= x0 + w + 1) & (v >= y0 - 1) & (v <= y0 + h + 1)
        assert in_box.double().mean() > 0.95  # parts thinner than a pixel may fall between pixel centres


def test_raycast_depth_of_a_sphere_is_exact():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    sphere.apply_translation([0.0, 0.0, 3.0])
    K = intrinsics(focal_from_fov(40.0, 65), 65, 65).numpy()
    result = raycast_scene([sphere], K, 65, 65)
    assert result.depth[32, 32] == pytest.approx(2.5, abs=1e-3)  # centre pixel hits the front pole
    assert result.instance[0, 0] == -1 and np.isinf(result.depth[0, 0])
    assert result.normal[32, 32, 2] == pytest.approx(-1.0, abs=1e-2)  # faces the camera


def test_ray_casting_uses_embree(monkeypatch):
    """embreex is a dependency: without it ray casting would fall back to trimesh's pure-Python intersector
    (slow, and every other test would still pass). The library says which intersector it uses, and warns
    when it falls back; here the fallback is made to fail loudly, and a scene still casts."""
    from amodal3d.data import raycast

    assert trimesh.ray.has_embree and raycast.ray_backend() == "embree"
    assert type(raycast._intersector(trimesh.creation.box())) is trimesh.ray.ray_pyembree.RayMeshIntersector
    monkeypatch.setattr(trimesh.ray, "has_embree", False)
    assert raycast.ray_backend() == "trimesh"
    with pytest.warns(RuntimeWarning, match=r"embree \(the embreex package\) cannot be imported: ray casting "
                                            r"falls back to trimesh's pure-Python intersector"):
        fallback = raycast._intersector(trimesh.creation.box())
    assert type(fallback) is trimesh.ray.ray_triangle.RayMeshIntersector
    monkeypatch.undo()

    class Refused:
        def __init__(self, *args, **kwargs):
            raise AssertionError("ray casting used trimesh's pure-Python intersector")

    monkeypatch.setattr(trimesh.ray.ray_triangle, "RayMeshIntersector", Refused)
    near, far = trimesh.creation.box(extents=(0.5, 2.0, 0.5)), trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    near.apply_translation([0.0, 0.0, 3.0])
    far.apply_translation([0.0, 0.0, 4.0])
    K = intrinsics(focal_from_fov(40.0, 33), 33, 33).numpy()
    result = raycast_scene([near, far], K, 33, 33)
    assert result.instance[16, 16] == 0 and (result.instance == 1).any()
    assert (result.amodal[1] & (result.instance == 0)).any()  # the far box, partly hidden by the near one


def test_occlusion_statistics_cover_the_range():
    rates = np.array([a["occlude_rate"] for s in _scenes(20, SceneConfig(size=64)) for a in s.annotations])
    assert (rates < 0.05).any() and ((rates > 0.05) & (rates < 0.25)).any()
    assert ((rates >= 0.25) & (rates <= 0.95)).any()


def test_generated_dataset_validates_and_loads(tiny_dataset):
    splits, violations = validate_dataset(tiny_dataset)
    assert splits == ["test", "train"] and violations == []
    dataset = AmodalDataset(tiny_dataset, "train")
    image, target = dataset[0]
    n = len(target["labels"])
    assert image.shape == (3, 96, 96) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert target["boxes"].shape == (n, 4) and target["masks"].shape == (n, 96, 96)
    assert torch.equal(target["masks"], target["visible_masks"])
    assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()
    assert target["viewpoint"].shape == (n, 3) and torch.isfinite(target["viewpoint"]).all()
    amodal = AmodalDataset(tiny_dataset, "train", target_masks="amodal")[0][1]
    assert torch.equal(amodal["masks"], amodal["amodal_masks"])


def test_splits_are_disjoint_by_mesh(tiny_dataset):
    meshes = {split: {a["mesh_id"] for a in load_annotation_file(
        tiny_dataset / "annotations" / f"{split}.json")["annotations"]} for split in ("train", "test")}
    assert meshes["train"] and meshes["test"] and not meshes["train"] & meshes["test"]


def test_pycocotools_loads_and_cocoeval_runs(tiny_dataset):
    gt = COCO(str(tiny_dataset / "annotations" / "test.json"))
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
                "score": 1.0} for a in gt.dataset["annotations"]]
    evaluator = COCOeval(gt, gt.loadRes(results), "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[1] == pytest.approx(1.0)  # AP50 of the ground truth itself


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "parts" not in p.parts and "cache" not in p.parts}  # cache: other tests' ROIs


def test_determinism_across_worker_counts(tmp_path, tiny_dataset):
    generate(tiny_config(tmp_path / "w2"), workers=2, progress=False)
    assert _files(tmp_path / "w2") == _files(tiny_dataset)


def test_resume_after_an_interrupted_run(tmp_path, tiny_dataset, monkeypatch):
    out = tmp_path / "resumed"
    real = generate_module.render_scene
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # stands for a crash in the middle of shard 3
        return real(*args, **kwargs)

    monkeypatch.setattr(generate_module, "render_scene", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate(tiny_config(out), workers=1, progress=False)
    parts = sorted(p.name for p in (out / "annotations" / "parts" / "train").iterdir())
    assert parts == ["00000.json", "00001.json"]  # finished shards only, no temporary left behind
    assert not list(out.rglob("*.tmp")) and not (out / "annotations" / "train.json").exists()
    monkeypatch.setattr(generate_module, "render_scene", real)
    generate(tiny_config(out), workers=1, progress=False)
    assert _files(out) == _files(tiny_dataset)


def test_resume_refuses_other_arguments(tmp_path, tiny_dataset):
    out = tmp_path / "copy"
    shutil.copytree(tiny_dataset, out)
    with pytest.raises(DataError, match="other arguments"):
        generate(tiny_config(out, seed=4), workers=1, progress=False)


def test_sharded_runs_merge(tmp_path, tiny_dataset):
    out = tmp_path / "sharded"
    first = generate(tiny_config(out), workers=1, shard=(0, 2), progress=False)
    assert first["train"] is None
    generate(tiny_config(out), workers=1, shard=(1, 2), progress=False)
    assert _files(out) == _files(tiny_dataset)


def test_cocoa_fixture_converts(cocoa_dir, tmp_path):
    data = convert(cocoa_dir)
    raw = [json.loads(p.read_text()) for p in sorted(cocoa_dir.glob("*.json"))]
    assert len(data["images"]) == 5
    assert len(data["annotations"]) == sum(len(r["regions"]) for r in raw) == 48
    occluded = 0
    for a in data["annotations"]:
        amodal, visible = decode_rle(a["amodal_segm"]), decode_rle(a["visible_segm"])
        assert not (visible & ~amodal).any()
        occluded += a["occlude_rate"] > 0
    assert occluded == sum("visible_mask" in reg for r in raw for reg in r["regions"])
    # the converted file is a dataset of its own: validate it in place
    root = tmp_path / "cocoa"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(cocoa_dir, root / "images" / "demo")
    assert main(["convert", str(cocoa_dir), "--out", str(root / "annotations" / "demo.json")]) == 0
    assert validate_dataset(root)[1] == []


def test_kins_and_d2sa_layouts_convert(tiny_dataset, tmp_path):
    data = load_annotation_file(tiny_dataset / "annotations" / "test.json")
    kins = {**data, "annotations": [{"id": a["id"], "image_id": a["image_id"], "category_id": a["category_id"],
                                     "a_segm": a["amodal_segm"], "i_segm": a["visible_segm"],
                                     "a_bbox": a["amodal_bbox"], "i_bbox": a["visible_bbox"]}
                                    for a in data["annotations"]]}
    d2sa = {**data, "annotations": [{"id": a["id"], "image_id": a["image_id"], "category_id": a["category_id"],
                                     "segmentation": a["amodal_segm"], "visible_mask": a["visible_segm"]}
                                    for a in data["annotations"]]}
    for name, layout in (("kins", kins), ("d2sa", d2sa)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(layout))
        converted = convert(path)
        for a, b in zip(converted["annotations"], data["annotations"]):
            assert a["amodal_segm"] == b["amodal_segm"] and a["visible_segm"] == b["visible_segm"]
            assert a["occlude_rate"] == pytest.approx(b["occlude_rate"], abs=1e-5)


def test_polygon_with_two_points_is_refused(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], "categories": [{"id": 1}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 4]]}]}
    path = tmp_path / "d2sa.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="fewer than 3 points"):
        convert(path, "d2sa")


def _tamper(tiny_dataset: Path, tmp_path: Path, edit) -> Path:
    root = tmp_path / "tampered"
    shutil.copytree(tiny_dataset, root)
    path = root / "annotations" / "test.json"
    data = json.loads(path.read_text())
    edit(data, root)
    path.write_text(json.dumps(data))
    return root


@pytest.mark.parametrize("edit, message", [
    (lambda d, r: d["annotations"][0].update(category_id=99), "unknown category id 99"),
    (lambda d, r: (r / "images" / "test" / d["images"][0]["file_name"]).unlink(), "does not exist"),
    (lambda d, r: d["annotations"][0].update(visible_segm=encode_rle(np.ones((96, 96), bool))),
     "visible mask is not inside the amodal mask"),
    (lambda d, r: d["annotations"][0].update(occlude_rate=0.5), "occlude_rate 0.5000 but"),
    (lambda d, r: d["annotations"][0].update(amodal_bbox=[0, 0, 1, 1]), "amodal_bbox [0, 0, 1, 1] does not"),
    (lambda d, r: d["annotations"][0].update(visible_segm=encode_rle(np.zeros((5, 5), bool))),
     "visible_segm size [5, 5] disagrees"),
    (lambda d, r: d["annotations"].append(dict(d["annotations"][0])), "duplicate annotation id"),
    (lambda d, r: d["images"][0].update(file_name="../../../etc/passwd"), "points outside"),
])
def test_validate_names_each_violation(tiny_dataset, tmp_path, edit, message):
    root = _tamper(tiny_dataset, tmp_path, edit)
    _, violations = validate_dataset(root, ["test"])
    assert any(message in str(v) for v in violations), [str(v) for v in violations]
    assert all(str(root / "annotations" / "test.json") in str(v) for v in violations)
    assert main(["validate", str(root), "--split", "test"]) == 1


def test_malformed_json_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "annotations").mkdir()
    bad = tmp_path / "annotations" / "train.json"
    bad.write_text('{"images": [')
    with pytest.raises(DataError, match=f"{bad}: malformed JSON"):
        AmodalDataset(tmp_path, "train")
    assert main(["show", str(tmp_path), "--split", "train"]) == 2
    assert "malformed JSON" in capsys.readouterr().err


def test_corrupt_and_empty_meshes_are_named(tmp_path):
    (tmp_path / "chair").mkdir()
    (tmp_path / "chair" / "broken.obj").write_text("v 0 0 0\nv nan 1 0\nv 0 0 1\nf 1 2 3\n")
    (tmp_path / "chair" / "empty.ply").write_bytes(b"not a ply at all")
    trimesh.creation.box().export(tmp_path / "chair" / "good.obj")
    with pytest.raises(MeshError, match="broken.obj: the mesh has NaN"):
        load_mesh_file(tmp_path / "chair" / "broken.obj")
    with pytest.raises(MeshError, match="empty.ply"):
        load_mesh_file(tmp_path / "chair" / "empty.ply")
    good = load_mesh_file(tmp_path / "chair" / "good.obj")
    assert np.linalg.norm(good.bounds[1] - good.bounds[0]) == pytest.approx(1.0)
    source = open_mesh_source(tmp_path)
    assert source.categories == ("chair",)
    with pytest.raises(MeshError, match="no mesh files found"):
        open_mesh_source(tmp_path / "chair")


def test_cli_generate_show_and_shapes(tmp_path):
    out = tmp_path / "cli"
    assert main(["generate", "--out", str(out), "--split", "val=3", "--size", "64", "--workers", "1",
                 "--quiet", "--save-meshes"]) == 0
    assert main(["validate", str(out)]) == 0
    assert list((out / "meshes" / "procedural").rglob("*.obj"))
    assert main(["show", str(out), "--split", "val", "--n", "3", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 1000
    assert main(["shapes", "--category", "chair", "--n", "2", "--out", str(tmp_path / "chairs.png")]) == 0
    with pytest.raises(SystemExit, match="2"):  # bad --split: argparse's one clear line
        main(["generate", "--out", str(out), "--split", "val"])


def test_every_category_can_be_rendered():
    source = open_mesh_source("procedural", seed=0)
    config = SceneConfig(size=64, min_objects=1, max_objects=1)
    seen = set()
    for i in range(80):
        seen |= {a["category_id"] for a in render_scene(np.random.default_rng(i), source, "val", config).annotations}
    assert len(seen) == len(CATEGORY_NAMES)


def test_shapes_split_puts_every_mesh_of_a_folder_in_one_split(tmp_path):
    for category in ("chair", "car"):
        (tmp_path / "meshes" / category).mkdir(parents=True)
        for k in range(6):
            trimesh.creation.box(extents=(1.0, 0.5 + 0.1 * k, 0.3)).export(tmp_path / "meshes" / category / f"m{k}.obj")
    hashed = open_mesh_source(tmp_path / "meshes")
    held_out = open_mesh_source(tmp_path / "meshes", only_split="test")
    assert sum(len(hashed.mesh_ids("chair", s)) for s in ("train", "val", "test")) == 6
    assert len(hashed.mesh_ids("chair", "test")) < 6  # the hash alone would leave meshes to train
    assert len(held_out.mesh_ids("chair", "test")) == 6 and held_out.mesh_ids("chair", "train") == []
    with pytest.raises(MeshError, match="applies to a mesh folder"):
        open_mesh_source("procedural", only_split="test")

    config = tiny_config(tmp_path / "data", shapes=str(tmp_path / "meshes"), shapes_split="test", splits={"test": 3})
    generate(config, workers=1, progress=False)
    annotations = json.loads((tmp_path / "data" / "annotations" / "test.json").read_text())["annotations"]
    assert annotations and {a["mesh_id"].split("/")[0] for a in annotations} <= {"chair", "car"}
    assert json.loads((tmp_path / "data" / "generation.json").read_text())["shapes_split"] == "test"
    assert "shapes_split" not in tiny_config(tmp_path / "other").fingerprint()  # older datasets still resume
    with pytest.raises(DataError, match="split.s. train would have none"):
        generate(dataclasses.replace(config, out=str(tmp_path / "bad"), splits={"train": 2, "test": 2}),
                 workers=1, progress=False)
    assert not (tmp_path / "bad").exists()


def _box_with_a_nose(direction) -> trimesh.Trimesh:
    """A unit box with a spike along ``direction``: the spike's tip marks the mesh's front."""
    box = trimesh.creation.box()
    tip = 1.5 * np.asarray(direction, float)
    side = 0.2 * (1 - np.abs(tip) / 1.5)  # across the spike
    nose = trimesh.Trimesh([tip, side, -side], [[0, 1, 2]], process=False)
    return trimesh.util.concatenate([box, nose])


def test_shapenet_roots_are_turned_into_the_object_frame(tmp_path):
    """ShapeNetCore v2 faces -Z and v1 +X (their READMEs); the data engine turns both to face +Z and
    leaves the meshes of a per-category folder as they are."""
    layouts = {"v2/02691156/m2/models/model_normalized.obj": [0, 0, -1], "v1/02691156/m1/model.obj": [1, 0, 0],
               "plain/airplane/m0.obj": [0, 0, 1]}
    for path, front in layouts.items():
        (tmp_path / path).parent.mkdir(parents=True)
        _box_with_a_nose(front).export(tmp_path / path)
    (tmp_path / "v2/02691156/m2/models/unused_part.obj").write_text("v 0 0 9\nv 0 1 9\nv 1 0 9\nf 1 2 3\n")
    (tmp_path / "v2/02691156/m2/models/model_normalized.json").write_text("{}")
    for root in ("v2", "v1", "plain"):
        source = open_mesh_source(tmp_path / root, only_split="test")
        [mesh_id] = source.mesh_ids("airplane", "test")  # ShapeNet's helper files are not meshes of their own
        vertices = source.load(mesh_id).vertices
        nose = vertices[8] - vertices[:8].mean(axis=0)  # the tip (vertex 8) from the box's centre
        assert np.allclose(nose / np.linalg.norm(nose), [0, 0, 1], atol=1e-6), (root, nose)
    assert shapenet_front_yaw("02691156/m/models/model_normalized.obj") == 180.0
    assert shapenet_front_yaw("airplane/model.obj") == 0.0  # not under a synset folder: the user's own frame
