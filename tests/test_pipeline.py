"""Step 5 and the full pipeline: region-specific refinement, AmodalSegmenter, predict/evaluate CLIs,
stage training (shape, refine) with resume. Models here are tiny and untrained: the tests check
behaviour that holds for any weights (invariants, plumbing, errors), not accuracy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from amodal3d.cli import main
from amodal3d.data.schema import categories_json
from amodal3d.engine.config import to_dict
from amodal3d.engine.weights import load_weights, save_weights
from amodal3d.errors import WeightsError
from amodal3d.masks import decode_rle, encode_rle, mask_to_bbox
from amodal3d.methods import build_predictor
from amodal3d.models.refine import (
    RefineConfig,
    RefineNet,
    hidden_under_occluders,
    prior_edge_band,
    refine_inputs,
    region_loss,
    weigh_detector_amodal,
)
from amodal3d.models.refine_train import PriorRois
from amodal3d.models.shape import ShapeConfig, ShapePrior
from amodal3d.pipeline import AmodalSegmenter, PipelineOptions
from amodal3d.structures import GivenVisible, Instances

SHAPE = ShapeConfig(roi_size=32, width=8, feature_dim=32, hypotheses=2)
REFINE = RefineConfig(width=8)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    """A pipeline folder of tiny untrained models (no detector: given-visible only)."""
    folder = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    save_weights(folder / "shape", ShapePrior(SHAPE).state_dict(), "shape-prior", to_dict(SHAPE))
    save_weights(folder / "refine", RefineNet(REFINE).state_dict(), "refine", to_dict(REFINE))
    no_prior = RefineConfig(width=8, use_prior=False)
    save_weights(folder / "refine_no_prior", RefineNet(no_prior).state_dict(), "refine", to_dict(no_prior))
    return folder


def _given(height: int = 64, width: int = 80) -> tuple[np.ndarray, GivenVisible]:
    image = (np.random.default_rng(0).uniform(0, 255, (height, width, 3))).astype(np.uint8)
    visible = np.zeros((2, height, width), bool)
    visible[0, 10:30, 10:25] = True
    visible[1, 30:50, 40:70] = True
    boxes = np.array([[10, 10, 25, 30], [40, 30, 70, 50]], np.float32)
    return image, GivenVisible(visible, np.array([5, 11]), boxes)


def test_region_loss_ignores_the_visible_region():
    logits = torch.randn(2, 16, 16)
    amodal = (torch.rand(2, 16, 16) > 0.5).float()
    visible = torch.zeros(2, 16, 16)
    visible[:, 4:12, 4:12] = 1
    zeros = torch.zeros(2, 16, 16)
    base = region_loss(logits, amodal, visible, zeros, zeros, REFINE)
    changed = logits.clone()
    changed[:, 4:12, 4:12] = 50.0  # anything inside the visible mask
    assert torch.allclose(region_loss(changed, amodal, visible, zeros, zeros, REFINE), base)


def test_refined_mask_keeps_the_visible_region_and_edge_band_is_a_ring():
    model = RefineNet(REFINE).eval()
    roi = torch.zeros(1, 6, 32, 32)
    roi[0, 3, 8:20, 8:20] = 1
    prior = torch.zeros(1, 32, 32)
    prior[0, 6:24, 6:24] = 1
    output, _ = model({"x": refine_inputs(roi, prior)})
    assert (output.amodal[0][roi[0, 3] > 0.5] == 1).all()
    band = prior_edge_band(prior, 2)[0]
    assert band[6, 15] == 1 and band[15, 15] == 0 and band[0, 0] == 0


def test_no_prior_ablation_differs_in_its_input_only():
    """a3d-no-prior sees no prior, yet trains on A3D's loss: weighted on the prior's edge band too."""
    torch.manual_seed(0)
    with_prior = RefineNet(REFINE).eval()
    ablation = RefineNet(RefineConfig(width=8, use_prior=False)).eval()
    ablation.load_state_dict(with_prior.state_dict())
    roi = torch.rand(1, 6, 32, 32).round()
    roi[0, 3] = 0
    roi[0, 3, 8:20, 8:20] = 1
    prior = torch.zeros(1, 32, 32)
    prior[0, 4:28, 4:28] = 1
    targets = {"amodal": torch.zeros(1, 32, 32)}
    out, losses = ablation({"x": refine_inputs(roi, prior)}, targets)
    blind, _ = ablation({"x": refine_inputs(roi, torch.zeros_like(prior))})
    assert torch.equal(out.logits, blind.logits)  # the prior does not reach the prediction
    band = prior_edge_band(prior, REFINE.edge_band)
    expected = region_loss(out.logits, targets["amodal"], roi[:, 3], roi[:, 4], band, REFINE)
    no_band = region_loss(out.logits, targets["amodal"], roi[:, 3], roi[:, 4], torch.zeros_like(band), REFINE)
    assert torch.allclose(losses["loss_refine"], expected) and not torch.allclose(expected, no_band)
    seen, _ = with_prior({"x": refine_inputs(roi, prior)})
    assert not torch.equal(seen.logits, out.logits)  # while A3D's prediction does depend on it


@pytest.mark.parametrize("mode", ["a3d", "a3d-no-prior", "a3d-no-refine", "prior-only"])
def test_segmenter_given_visible(pipeline_dir, mode):
    segmenter = AmodalSegmenter.from_pretrained(pipeline_dir, mode=mode)
    image, given = _given()
    out = segmenter.predict(image, given)
    assert out.amodal_masks.shape == given.visible_masks.shape and out.labels.tolist() == [5, 11]
    if mode != "prior-only":
        assert not (given.visible_masks & ~out.amodal_masks).any(), "visible ⊆ amodal"
    verts, faces = out.extras["meshes"][0]
    assert verts.shape == (642, 3) and faces.shape == (1280, 3)
    assert set(out.extras["viewpoints"][1]) == {"azimuth", "elevation", "distance"}
    assert set(segmenter.stage_ms()) >= {"detector", "rois", "shape", "paste"}


def test_hidden_parts_only_under_other_instances(pipeline_dir):
    visible = torch.zeros(3, 6, 6, dtype=torch.bool)
    visible[0, :, :2], visible[1, :, 4:] = True, True  # instance 2 is hidden entirely (no visible pixel)
    amodal = torch.ones(3, 6, 6, dtype=torch.bool)
    out = hidden_under_occluders(amodal, visible)
    for k in range(3):  # reference: own visible pixels, plus pixels where another instance is seen
        others = visible[[j for j in range(3) if j != k]].any(0)
        assert torch.equal(out[k], visible[k] | others)
    image, given = _given()
    free = AmodalSegmenter.from_pretrained(pipeline_dir, mode="a3d", occluder_constraint=False)
    bound = AmodalSegmenter.from_pretrained(pipeline_dir, mode="a3d")
    loose, tight = free.predict(image, given).amodal_masks, bound.predict(image, given).amodal_masks
    others = given.visible_masks[::-1]  # two instances: each one's occluders are the other's visible mask
    assert not (tight & ~(given.visible_masks | others)).any()
    assert np.array_equal(tight, loose & (given.visible_masks | others) | given.visible_masks)
    assert (free.name, bound.name) == ("a3d-unconstrained", "a3d")



class _StepOne:
    """A step-1 stand-in: fixed detections whose amodal masks differ from their visible masks."""

    def __init__(self, given: GivenVisible, amodal: np.ndarray):
        self.given, self.amodal = given, amodal

    def predict(self, image: np.ndarray) -> Instances:
        n = len(self.given.labels)
        return Instances(self.given.boxes, self.given.labels, np.ones(n, np.float32), self.given.visible_masks,
                         self.amodal)


@pytest.mark.parametrize("mode", ["a3d", "a3d-no-refine", "prior-only"])
def test_detector_amodal_masks_join_the_hidden_parts_end_to_end(pipeline_dir, mode):
    image, given = _given()
    amodal = given.visible_masks.copy()
    amodal[0, 10:50, 10:70] = True  # the detector sees instance 0 extend behind instance 1, and beyond
    step1 = _StepOne(given, amodal)
    plain = AmodalSegmenter.from_pretrained(pipeline_dir, mode=mode)
    joined = AmodalSegmenter(step1, plain.shape, plain.refine, PipelineOptions(mode=mode))
    alone = AmodalSegmenter(step1, plain.shape, plain.refine, PipelineOptions(mode=mode, detector_amodal=False))
    a, b = joined.predict(image).amodal_masks, alone.predict(image).amodal_masks
    if mode == "prior-only":  # the prior alone, whatever the detector says
        assert np.array_equal(a, b)
        return
    detector_hidden = hidden_under_occluders(torch.from_numpy(amodal), torch.from_numpy(given.visible_masks))
    assert np.array_equal(a, b | detector_hidden.numpy())
    assert a[0, 30:50, 40:70].all()  # behind instance 1: taken from the detector
    assert np.array_equal(a[0, 10:30, 30:40], b[0, 10:30, 30:40])  # behind nothing seen: left to steps 2-5
    assert np.array_equal(alone.predict(image).amodal_masks, plain.predict(image, given).amodal_masks)


def test_fusion_is_the_mean_of_both_probabilities_above_the_threshold():
    refined = torch.tensor([0.9, 0.5, 0.2, 0.0, 0.71, 0.7])
    step1 = torch.tensor([0.0, 0.3, 0.6, 0.7, 0.0, 0.0])
    fused = weigh_detector_amodal(refined, step1, threshold=0.35)
    # means .45, .4, .4, .35, .355, .35: one side alone must exceed 0.7, both together 0.35 each
    assert fused.tolist() == [True, True, True, False, True, False]
    assert weigh_detector_amodal(refined, step1, threshold=0.5).tolist() == [False] * 6


class _StepOneWithProbabilities(_StepOne):
    """A step-1 stand-in that also returns its amodal head's probabilities, as DetectorPredictor does."""

    def predict(self, image: np.ndarray) -> Instances:
        out = super().predict(image)
        out.extras["amodal_probs"] = self.amodal.astype(np.float16)
        return out


@pytest.mark.parametrize("mode", ["a3d", "a3d-no-refine"])
def test_detector_amodal_probabilities_are_weighed_against_steps_2_5(pipeline_dir, mode):
    image, given = _given()
    amodal = given.visible_masks.copy()
    amodal[0, 10:50, 10:70] = True  # the detector is sure instance 0 extends behind instance 1, and beyond
    plain = AmodalSegmenter.from_pretrained(pipeline_dir, mode=mode)
    weighed = AmodalSegmenter(_StepOneWithProbabilities(given, amodal), plain.shape, plain.refine,
                              PipelineOptions(mode=mode))
    alone = AmodalSegmenter(_StepOne(given, amodal), plain.shape, plain.refine,
                            PipelineOptions(mode=mode, detector_amodal=False))
    a, b = weighed.predict(image).amodal_masks, alone.predict(image).amodal_masks
    assert not (given.visible_masks & ~a).any(), "visible ⊆ amodal"
    detector_hidden = hidden_under_occluders(torch.from_numpy(amodal), torch.from_numpy(given.visible_masks))
    assert not (detector_hidden.numpy() & ~a).any()  # a sure step 1 (p = 1) is always taken
    assert a[0, 30:50, 40:70].all()
    # where step 1 says 0, steps 2-5 alone must exceed 0.7 (instead of 0.5): never more than alone
    assert not (a & ~b & ~amodal).any()


def test_a3d_diagnosis_completes_visible_masks_as_the_pipeline_does_end_to_end(pipeline_dir):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "diagnose_a3d", Path(__file__).resolve().parents[1] / "benchmarks" / "diagnose_a3d.py")
    diagnose = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagnose)
    image, given = _given()
    amodal = given.visible_masks.copy()
    amodal[0, 10:50, 10:70] = True
    plain = AmodalSegmenter.from_pretrained(pipeline_dir)
    end_to_end = AmodalSegmenter(_StepOneWithProbabilities(given, amodal), plain.shape, plain.refine)
    expected = end_to_end.predict(image).amodal_masks
    probs = amodal.astype(np.float16)
    segmenter = AmodalSegmenter(None, plain.shape, plain.refine)
    assert np.array_equal(diagnose.complete(segmenter, image, given.visible_masks, given.labels, probs, 2), expected)
    # instance 1 as an occluder only: instance 0 comes out the same
    assert np.array_equal(diagnose.complete(segmenter, image, given.visible_masks, given.labels, probs[:1], 1),
                          expected[:1])
    without = diagnose.complete(segmenter, image, given.visible_masks, given.labels, None, 2)
    assert np.array_equal(without, plain.predict(image, given).amodal_masks)  # steps 2-5 alone


def test_prior_fit_steps_follow_the_refinement_config(pipeline_dir, tmp_path):
    """The A3D refinement net records the render-and-compare steps its priors were fitted with; the
    pipeline uses as many in every mode that uses the prior (none for a3d-no-prior), unless overridden."""
    folder = tmp_path / "fitted"
    shutil.copytree(pipeline_dir, folder)
    fitted = RefineConfig(width=8, prior_fit_steps=3)
    save_weights(folder / "refine", RefineNet(fitted).state_dict(), "refine", to_dict(fitted))
    steps = {mode: AmodalSegmenter.from_pretrained(folder, mode=mode).fit_steps
             for mode in ("a3d", "a3d-no-prior", "a3d-no-refine", "prior-only")}
    assert steps == {"a3d": 3, "a3d-no-prior": 0, "a3d-no-refine": 3, "prior-only": 3}
    assert AmodalSegmenter.from_pretrained(pipeline_dir).fit_steps == 0
    # `evaluate --method`: a3d fits as its refinement was trained, a3d-no-fit is the same net without
    assert {name: build_predictor(name, weights=folder).fit_steps for name in ("a3d", "a3d-no-fit")} == {
        "a3d": 3, "a3d-no-fit": 0}
    image, given = _given()
    fit = AmodalSegmenter.from_pretrained(folder, mode="a3d")
    plain = AmodalSegmenter.from_pretrained(folder, mode="a3d", fit_steps=0)
    moved, kept = fit.predict(image, given).extras["viewpoints"], plain.predict(image, given).extras["viewpoints"]
    assert "fit" in fit.stage_ms() and "fit" not in plain.stage_ms()
    with pytest.raises(ValueError, match="fit_steps"):
        AmodalSegmenter.from_pretrained(folder, fit_steps=-1)
    with pytest.raises(SystemExit, match="^2$") as exit_info:  # argparse: usage error, exit 2
        main(["predict", str(tmp_path), "--out", str(tmp_path / "out"), "--fit-steps", "-1"])
    assert exit_info.value.code == 2
    assert moved != kept and [v["distance"] for v in moved] == [v["distance"] for v in kept]


def test_segmenter_errors(pipeline_dir, tmp_path):
    segmenter = AmodalSegmenter.from_pretrained(pipeline_dir, mode="a3d-no-refine")
    with pytest.raises(WeightsError, match="no detector weights"):
        segmenter.predict(_given()[0])
    with pytest.raises(WeightsError, match="neither a built-in model"):
        AmodalSegmenter.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown mode"):
        AmodalSegmenter.from_pretrained(pipeline_dir, mode="magic")
    fake = tmp_path / "pickle"
    shutil.copytree(pipeline_dir, fake)
    torch.save({"x": torch.zeros(1)}, fake / "shape.safetensors")
    with pytest.raises(WeightsError, match="never unpickles"):
        AmodalSegmenter.from_pretrained(fake, mode="prior-only")


def test_predict_cli_with_external_visible_masks(pipeline_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    image, given = _given()
    Image.fromarray(image).save(images / "rgb.png")
    Image.fromarray(image[..., 0]).save(images / "grey.png")
    Image.fromarray(np.dstack([image, np.full(image.shape[:2], 200, np.uint8)])).save(images / "rgba.png")
    Image.fromarray(image[..., 0].astype(np.uint16) * 200).save(images / "deep16.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    coco = {"images": [{"id": i, "file_name": name, "height": 64, "width": 80}
                       for i, name in enumerate(["rgb.png", "grey.png", "rgba.png", "deep16.png"], 1)],
            "annotations": [{"id": 10 * i + k, "image_id": i, "category_id": int(given.labels[k]),
                             "segmentation": encode_rle(given.visible_masks[k])}
                            for i in range(1, 5) for k in range(2)]}
    visible_json = tmp_path / "visible.json"
    visible_json.write_text(json.dumps(coco))
    out = tmp_path / "out"
    args = ["predict", str(images), "--out", str(out), "--weights", str(pipeline_dir), "--visible", str(visible_json)]
    # without this project's category list the ids are not taken as its categories; naming the masks
    # takes a crop head, which this pipeline lacks
    assert main(args) == 2
    visible_json.write_text(json.dumps({**coco, "categories": categories_json()}))
    assert main(args + ["--no-overlays"]) == 1  # broken.png failed, the others ran
    # the same run through the library, with the occluder constraint lifted (a PipelineOptions field, no
    # predict option)
    from amodal3d.commands.pipeline import expand_images
    from amodal3d.predict import predict_files

    shutil.rmtree(out)
    summary = predict_files(expand_images([str(images)]), out, str(pipeline_dir),
                            PipelineOptions(occluder_constraint=False), visible_json=str(visible_json), meshes="obj",
                            progress=False)
    assert summary["images"] == 4 and len(summary["failed"]) == 1
    results = json.loads((out / "results.json").read_text())
    names = ["rgb.png", "grey.png", "rgba.png", "deep16.png"]  # in name order, with "broken.png" left out
    assert [Path(r["file_name"]).name for r in results] == [name for name in sorted(names) for _ in range(2)]
    assert [r["file_name"] for r in results[::2]] == [str(images / name) for name in sorted(names)]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(f"{Path(n).stem}.png" for n in names)
    assert sorted(p.name for p in (out / "meshes").iterdir()) == sorted(
        f"{Path(n).stem}_{k}.obj" for n in names for k in range(2))
    # rgb.png, in-process: without the occluder constraint these untrained models complete each mask a little
    expected = AmodalSegmenter.from_pretrained(pipeline_dir, occluder_constraint=False).predict(image, given)
    assert (expected.amodal_masks.sum((1, 2)) > given.visible_masks.sum((1, 2))).all()
    for k, result in enumerate(results):
        # each given mask comes back in order, with its category, as the visible mask of its entry
        assert result["category_id"] == int(given.labels[k % 2])
        visible, amodal = decode_rle(result["visible_segmentation"]), decode_rle(result["segmentation"])
        assert visible.shape == amodal.shape == (64, 80)
        assert np.array_equal(visible, given.visible_masks[k % 2])
        assert not (visible & ~amodal).any() and amodal.sum() >= visible.sum() > 0
        assert result["bbox"] == mask_to_bbox(amodal)
        assert set(result["viewpoint"]) == {"azimuth", "elevation", "distance"}
        if Path(result["file_name"]).name == "rgb.png":
            assert np.array_equal(amodal, expected.amodal_masks[k % 2])
            assert result["score"] == pytest.approx(float(expected.scores[k % 2]), abs=1e-5)
        mesh = trimesh.load(out / "meshes" / f"{Path(result['file_name']).stem}_{k % 2}.obj", process=False)
        assert mesh.vertices.shape == (642, 3) and mesh.faces.shape == (1280, 3)
    for name in names:
        with Image.open(out / "overlays" / f"{Path(name).stem}.png") as overlay:
            assert overlay.size == (80, 64)
    assert main(["predict", str(tmp_path / "missing.png"), "--out", str(out)]) == 2


def test_evaluate_cli_runs_a3d_given_visible(pipeline_dir, tiny_dataset, tmp_path):
    out = tmp_path / "a3d.json"
    assert main(["evaluate", "--method", "a3d", "--weights", str(pipeline_dir), "--protocol", "given-visible",
                 "--data", str(tiny_dataset), "--split", "test", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["method"] == "a3d" and result["protocol"] == "given-visible"
    # the figures worked out here: the same pipeline completes each test image's true visible masks; each
    # instance's IoU (and its hidden part's) is counted in numpy, averaged per category, then over categories
    from amodal3d.data.dataset import load_annotation_file, read_image, split_paths
    from amodal3d.masks import masks_to_boxes

    segmenter = AmodalSegmenter.from_pretrained(pipeline_dir)
    annotation_file, image_dir = split_paths(tiny_dataset, "test")
    data = load_annotation_file(annotation_file)
    ious: dict[int, list[float]] = {}
    hidden: dict[int, list[float]] = {}
    for info in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == info["id"]]
        visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        labels = np.array([a["category_id"] for a in anns])
        completed = segmenter.predict(read_image(image_dir / info["file_name"]),
                                      GivenVisible(visible, labels, masks_to_boxes(visible))).amodal_masks
        for a, seen, predicted in zip(anns, visible, completed):
            truth = decode_rle(a["amodal_segm"])
            ious.setdefault(a["category_id"], []).append((predicted & truth).sum() / (predicted | truth).sum())
            if a["occlude_rate"] >= 0.05:
                found, there = predicted & ~seen, truth & ~seen
                hidden.setdefault(a["category_id"], []).append((found & there).sum() / (found | there).sum())
    assert len(hidden) >= 1 and sum(map(len, ious.values())) == result["num_instances"]
    for figure, values in (("miou", ious), ("occluded_miou", hidden)):
        expected = np.mean([np.mean(v) for v in values.values()])
        assert result[figure] == pytest.approx(expected, abs=1e-6), figure


@pytest.mark.slow
def test_shape_and_refine_training_resume(tiny_dataset, tmp_path):
    config = tmp_path / "shape.yaml"
    # a constant schedule: the learning rate of an iteration does not depend on --max-iters
    config.write_text("model: {roi_size: 32, width: 8, feature_dim: 32, hypotheses: 2}\n"
                      "train: {batch_size: 4, epochs: 1, checkpoint_every: 1, log_every: 1, schedule: constant}\n")
    run = tmp_path / "shape"
    args = ["train", "shape", "--data", str(tiny_dataset), "--config", str(config), "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(run), "--max-iters", "2"]) == 0
    two_steps, _ = load_weights(run / "model.safetensors", "shape-prior")
    assert main([*args, "--out", str(run), "--max-iters", "3"]) == 0  # resumes at iteration 2
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if "event" in e].count("resume") == 1
    assert max(e["iteration"] for e in events if "iteration" in e) == 3
    # the resumed run ends where an uninterrupted one does, bit for bit
    assert main([*args, "--out", str(tmp_path / "uninterrupted"), "--max-iters", "3"]) == 0
    resumed, _ = load_weights(run / "model.safetensors", "shape-prior")
    uninterrupted, _ = load_weights(tmp_path / "uninterrupted" / "model.safetensors", "shape-prior")
    assert resumed.keys() == uninterrupted.keys()
    assert [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])] == []
    assert any(not torch.equal(resumed[k], two_steps[k]) for k in resumed)  # the third step moved them
    assert (run / "reconstructions.png").is_file()
    refine = tmp_path / "refine"
    assert main(["train", "refine", "--data", str(tiny_dataset), "--shape-weights", str(run / "model.safetensors"),
                 "--out", str(refine), "--max-iters", "2", "--batch-size", "4", "--device", "cpu", "--quiet"]) == 0
    assert (refine / "model.safetensors").is_file() and (refine / "model.json").is_file()
    # The refinement fine-tunes from given weights too (lr ~0: they stay, whatever the seed).
    tuned_refine = tmp_path / "tuned_refine"
    assert main(["train", "refine", "--data", str(tiny_dataset), "--shape-weights", str(run / "model.safetensors"),
                 "--out", str(tuned_refine), "--init", str(refine / "model.safetensors"), "--max-iters", "1",
                 "--batch-size", "4", "--lr", "1e-12", "--warmup-iters", "0", "--seed", "5", "--threads", "1",
                 "--device", "cpu", "--quiet"]) == 0
    before, _ = load_weights(refine / "model.safetensors", "refine")
    after, _ = load_weights(tuned_refine / "model.safetensors", "refine")
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert main(["train", "refine", "--data", str(tiny_dataset), "--shape-weights", str(run / "model.safetensors"),
                 "--out", str(tmp_path / "refused"), "--init", str(run / "model.safetensors"), "--device", "cpu",
                 "--quiet"]) == 2  # shape weights are not a refinement net
    # Priors fitted by render-and-compare are cached apart from the plain ones (and reloaded as written).
    cache = tmp_path / "cache"
    plain = PriorRois(tiny_dataset, "train", run / "model.safetensors", progress=False, cache_dir=cache)
    fitted = PriorRois(tiny_dataset, "train", run / "model.safetensors", fit_steps=2, progress=False, cache_dir=cache)
    assert plain.priors.shape == fitted.priors.shape and not np.array_equal(plain.priors, fitted.priors)
    assert fitted.rois.path.parent == cache and len(list(cache.glob("*_priors_*.npy"))) == 2
    again = PriorRois(tiny_dataset, "train", run / "model.safetensors", fit_steps=2, progress=False, cache_dir=cache)
    assert np.array_equal(again.priors, fitted.priors)
    # Fine-tuning starts from the given weights (lr ~0: they stay); another architecture is refused.
    sharp = tmp_path / "sharp.yaml"
    sharp.write_text("model: {roi_size: 32, width: 8, feature_dim: 32, hypotheses: 2, sigma: 0.1}\n"
                     "train: {batch_size: 4, epochs: 1, lr: 1.0e-12, warmup_iters: 0}\n")
    tuned = tmp_path / "tuned"
    assert main(["train", "shape", "--data", str(tiny_dataset), "--out", str(tuned), "--config", str(sharp),
                 "--init", str(run / "model.safetensors"), "--max-iters", "1", "--device", "cpu", "--quiet"]) == 0
    before, _ = load_weights(run / "model.safetensors", "shape-prior")
    after, _ = load_weights(tuned / "model.safetensors", "shape-prior")
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    sharp.write_text(sharp.read_text().replace("width: 8", "width: 16"))
    assert main(["train", "shape", "--data", str(tiny_dataset), "--out", str(tmp_path / "other"), "--config",
                 str(sharp), "--init", str(run / "model.safetensors"), "--device", "cpu", "--quiet"]) == 2
    mesh = tmp_path / "mesh.obj"
    assert main(["export-mesh", "--weights", str(run / "model.safetensors"), "--data", str(tiny_dataset),
                 "--split", "test", "--out", str(mesh)]) == 0
    assert mesh.read_text().count("\nv ") + mesh.read_text().startswith("v ") >= 642


@pytest.mark.slow
def test_train_all_builds_a_pipeline_folder_with_every_stage(tiny_dataset, tmp_path):
    configs = {
        "detector": "model: {preset: cpu-small, heads: both, min_size: 128, max_size: 128}\n"
                    "train: {epochs: 1, batch_size: 2, workers: 0, warmup_iters: 1}\n",
        "crop_head": "model: {width: 8, roi_size: 32}\ntrain: {epochs: 1, batch_size: 2, workers: 0}\n",
        "shape": "model: {roi_size: 32, width: 8, feature_dim: 32, hypotheses: 2}\ntrain: {epochs: 1, batch_size: 8}\n",
        "refine": "model: {width: 8}\ntrain: {epochs: 1, batch_size: 8}\n",
    }
    for name, text in configs.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    out = tmp_path / "run"
    args = ["train", "all", "--data", str(tiny_dataset), "--out", str(out), "--device", "cpu", "--quiet",
            "--shape-finetune-config", "none"]
    for name in configs:
        args += [f"--{name.replace('_', '-')}-config", str(tmp_path / f"{name}.yaml")]
    assert main(args) == 0
    folder = out / "pipeline"
    for stem in ("detector", "crop_head", "shape", "refine", "refine_no_prior"):
        assert (folder / f"{stem}.safetensors").is_file() and (folder / f"{stem}.json").is_file(), stem
    assert "box_targets: amodal" in (out / "crop_head" / "config.yaml").read_text()  # the ORCNN detector's boxes
    segmenter = AmodalSegmenter.from_pretrained(folder, score_threshold=0.0)
    assert segmenter.detector.crop_head is not None
    assert AmodalSegmenter.from_pretrained(folder, crop_head=False).detector.crop_head is None
    image = np.array(Image.open(next((tiny_dataset / "images" / "test").iterdir())).convert("RGB"))
    instances = segmenter.predict(image)
    assert not (instances.visible_masks & ~instances.amodal_masks).any()


@pytest.mark.slow
def test_shipped_model_loads_fits_the_size_limit_and_predicts_one_entry_per_object(tmp_path, monkeypatch):
    from torchvision.ops import box_iou

    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.scene import SceneConfig, render_scene
    from amodal3d.pipeline import BUILTIN, DEFAULT_SCORE_THRESHOLD

    folder = BUILTIN["cpu-small"]
    files = sorted(folder.glob("*.safetensors"))
    assert {f.stem for f in files} == {"detector", "crop_head", "maskrcnn_amodal", "shape", "refine", "refine_no_prior"}
    assert sum(f.stat().st_size for f in files) <= 40e6  # issue 5: all shipped weights <= 40 MB
    scene = render_scene(np.random.default_rng([0, 0]), open_mesh_source("procedural", seed=0), "test", SceneConfig())
    with_head = AmodalSegmenter.from_pretrained("cpu-small", score_threshold=0.05)
    without = AmodalSegmenter.from_pretrained("cpu-small", score_threshold=0.05, crop_head=False)
    assert with_head.detector.crop_head is not None and without.detector.crop_head is None
    looked, raw = with_head.predict(scene.image), without.predict(scene.image)
    assert 0 < len(looked.labels) < len(raw.labels)  # the detector alone: one entry per category hypothesis
    overlap = box_iou(torch.from_numpy(looked.boxes), torch.from_numpy(looked.boxes)).fill_diagonal_(0)
    assert overlap.max() <= with_head.detector.crop_head.config.group_iou
    assert not (looked.visible_masks & ~looked.amodal_masks).any()

    single = AmodalSegmenter.from_pretrained("cpu-small", score_threshold=0.05, mirrored_detections=False)
    assert with_head.detector.mirrored_detections and not single.detector.mirrored_detections
    assert not without.detector.mirrored_detections  # the mirror image's detections need the crop head
    one_view = single.predict(scene.image)

    # the CLI: the same entries; --single-view step 1 on the image only
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    for flag, expected in (([], len(looked.labels)), (["--single-view"], len(one_view.labels))):
        out = tmp_path / f"out{'_'.join(flag)}"
        assert main(["predict", str(tmp_path / "scene.png"), "--out", str(out), "--score-threshold", "0.05",
                     "--no-overlays", *flag]) == 0
        assert len(json.loads((out / "results.json").read_text())) == expected
    # without --score-threshold: the objects scoring at least DEFAULT_SCORE_THRESHOLD (by score, whereas the
    # evaluation harness keeps every object whose objectness reaches its floor)
    assert with_head.detector.keep_by == "score" and build_predictor("a3d").detector.keep_by == "objectness"
    assert main(["predict", str(tmp_path / "scene.png"), "--out", str(tmp_path / "default"), "--no-overlays"]) == 0
    kept = json.loads((tmp_path / "default" / "results.json").read_text())
    assert len(kept) == int((looked.scores >= DEFAULT_SCORE_THRESHOLD).sum())
    # a default between two objects' scores: the CLI keeps the ones above it only
    import amodal3d.pipeline

    assert len(looked.labels) >= 2
    between = float(np.sort(looked.scores)[:2].mean())
    monkeypatch.setattr(amodal3d.pipeline, "DEFAULT_SCORE_THRESHOLD", between)
    assert main(["predict", str(tmp_path / "scene.png"), "--out", str(tmp_path / "between"), "--no-overlays"]) == 0
    kept = json.loads((tmp_path / "between" / "results.json").read_text())
    assert len(kept) == int((looked.scores >= between).sum()) == len(looked.labels) - 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_shipped_model_on_cuda_predicts_what_it_predicts_on_cpu():
    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.scene import SceneConfig, render_scene
    from amodal3d.masks import mask_iou

    source = open_mesh_source("procedural", seed=0)
    cpu, gpu = (AmodalSegmenter.from_pretrained("cpu-small", device=device) for device in ("cpu", "cuda"))
    for index in range(3):
        image = render_scene(np.random.default_rng([0, index]), source, "test", SceneConfig()).image
        on_cpu, on_gpu = cpu.predict(image), gpu.predict(image)
        assert len(on_gpu.labels) == len(on_cpu.labels) > 0
        assert (on_gpu.labels == on_cpu.labels).all()
        np.testing.assert_allclose(on_gpu.scores, on_cpu.scores, atol=2e-3)
        for k in range(len(on_cpu.labels)):
            assert mask_iou(on_gpu.amodal_masks[k], on_cpu.amodal_masks[k]) >= 0.97
            assert mask_iou(on_gpu.visible_masks[k], on_cpu.visible_masks[k]) >= 0.97
        for (v_gpu, f_gpu), (v_cpu, f_cpu) in zip(on_gpu.extras["meshes"], on_cpu.extras["meshes"]):
            assert isinstance(v_gpu, np.ndarray) and (f_gpu == f_cpu).all()  # meshes come back to the host
            np.testing.assert_allclose(v_gpu, v_cpu, atol=1e-3)


@pytest.mark.slow
def test_demo_scores_more_scenes_than_it_draws(tmp_path, capsys, monkeypatch):
    import re

    import amodal3d.data.scene
    from amodal3d.evaluation import metrics

    # keep the scenes the demo draws and the predictions it scores, to work its figures out here
    scenes, predictions = [], []
    render, predict = amodal3d.data.scene.render_scene, AmodalSegmenter.predict

    def render_and_keep(*args, **kwargs):
        scenes.append(render(*args, **kwargs))
        return scenes[-1]

    def predict_and_keep(self, image, given=None):
        predictions.append(predict(self, image, given))
        return predictions[-1]

    monkeypatch.setattr(amodal3d.data.scene, "render_scene", render_and_keep)
    monkeypatch.setattr(AmodalSegmenter, "predict", predict_and_keep)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--n", "1", "--scored", "2"]) == 0
    printed = capsys.readouterr().out
    instances = sum(len(scene.annotations) for scene in scenes)
    assert printed.startswith(f"amodal3d demo: 2 generated scenes, {instances} instances")
    figures = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert figures == ["demo.png", "scene_0_amodal.png"]  # the second scene is scored, not drawn
    # Per instance: its amodal IoU (end to end: with the detection matched to it on visible IoU >= 0.5,
    # else 0; given-visible: with its own completion) and its hidden part's IoU, counted in numpy; then
    # averaged per category and over the categories (the hidden part: occlude_rate >= 0.05 only).
    assert len(scenes) == 2 and len(predictions) == 4  # per scene: end to end, then given-visible
    scores = {"end-to-end": {}, "given-visible": {}}
    for scene, detected, completed in zip(scenes, predictions[::2], predictions[1::2]):
        visible = np.stack([decode_rle(a["visible_segm"]) for a in scene.annotations])
        match = metrics.match_greedy(metrics.mask_iou_matrix(visible, detected.visible_masks))
        for protocol, masks, index in (("end-to-end", detected.amodal_masks, match),
                                       ("given-visible", completed.amodal_masks, range(len(visible)))):
            for a, seen, k in zip(scene.annotations, visible, index):
                truth = decode_rle(a["amodal_segm"])
                predicted = masks[k] if k >= 0 else np.zeros_like(truth)
                iou, hidden = ((p & t).sum() / max((p | t).sum(), 1) if (p | t).any() else 1.0
                               for p, t in ((predicted, truth), (predicted & ~seen, truth & ~seen)))
                per = scores[protocol].setdefault(a["category_id"], ([], []))
                per[0].append(iou)
                if a["occlude_rate"] >= 0.05:
                    per[1].append(hidden)
    for protocol, per in scores.items():
        miou = np.mean([np.mean(all_) for all_, _ in per.values()])
        occluded = np.mean([np.mean(hidden) for _, hidden in per.values() if hidden])
        shown = re.search(rf"{protocol}\s+mIoU (\d+\.\d)   occluded mIoU (\d+\.\d)", printed)
        assert float(shown.group(1)) == pytest.approx(100 * miou, abs=0.05 + 1e-9), protocol
        assert float(shown.group(2)) == pytest.approx(100 * occluded, abs=0.05 + 1e-9), protocol
    assert 0.5 < miou < 1  # given-visible: a figure that a broken score would move
    with Image.open(tmp_path / "demo" / "demo.png") as figure:
        assert figure.width > 4 * figure.height  # one row of five panels


def test_demo_runs_on_a_mesh_folder(tmp_path, capsys):
    import trimesh

    (tmp_path / "meshes" / "dresser").mkdir(parents=True)
    for k in range(2):  # by the hash of their paths box0 falls in train, box1 in test
        trimesh.creation.box(extents=(1.0, 0.6 + 0.2 * k, 0.5)).export(tmp_path / "meshes" / "dresser" / f"box{k}.obj")
    args = ["demo", "--out", str(tmp_path / "demo"), "--n", "1", "--scored", "1", "--shapes", str(tmp_path / "meshes")]
    assert main(args + ["--shapes-split", "val"]) == 0
    assert "meshes, split val" in capsys.readouterr().out and (tmp_path / "demo" / "demo.png").is_file()
    (tmp_path / "meshes" / "dresser" / "box1.obj").unlink()
    assert main(args) == 2  # its test split is empty now
    assert "no meshes in split test (give --shapes-split test" in capsys.readouterr().err


def test_given_masks_of_unknown_category_are_named_by_step_1s_crop_head(tiny_dataset):
    """A visible mask of UNKNOWN_CATEGORY gets the category the crop head reads in its box, as step 1
    reads (mirrored, enlargements); steps 2-5 then run as if that category had been given."""
    import torch

    from amodal3d.data.dataset import load_annotation_file, read_image, split_paths
    from amodal3d.masks import decode_rle
    from amodal3d.models.crop_head import read_crops_averaged
    from amodal3d.structures import UNKNOWN_CATEGORY

    annotation_file, image_dir = split_paths(tiny_dataset, "test")
    data = load_annotation_file(annotation_file)
    image = read_image(image_dir / data["images"][0]["file_name"])
    visible = np.stack([decode_rle(a["visible_segm"]) for a in data["annotations"]
                        if a["image_id"] == data["images"][0]["id"]])
    boxes = np.array([[*np.argwhere(m).min(0)[::-1], *(np.argwhere(m).max(0)[::-1] + 1)] for m in visible],
                     np.float32)
    segmenter = AmodalSegmenter.from_pretrained("cpu-small")
    unknown = segmenter.predict(image, GivenVisible(visible, np.full(len(visible), UNKNOWN_CATEGORY), boxes))
    step1 = segmenter.detector
    probs, _ = read_crops_averaged(step1.crop_head, torch.from_numpy(image).permute(2, 0, 1).float() / 255,
                                   torch.from_numpy(boxes), flip=step1.crop_head_flip,
                                   enlargements=step1.crop_head_enlargements)
    expected = probs.argmax(1).numpy() + 1
    assert (unknown.labels == expected).all()
    named = segmenter.predict(image, GivenVisible(visible, expected, boxes))
    assert (named.amodal_masks == unknown.amodal_masks).all()
