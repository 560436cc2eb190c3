"""Step 1b, the crop head: grouping of detections, crop inputs, learning, training data, CLI and the
detector predictor that applies it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amodal3d.cli import main
from amodal3d.configs import CONFIG_DIR
from amodal3d.data.dataset import AmodalDataset
from amodal3d.engine.augment import AugmentConfig
from amodal3d.engine.config import to_dict
from amodal3d.engine.weights import save_weights
from amodal3d.errors import WeightsError
from amodal3d.models.crop_head import (
    WEIGHTS_KIND,
    CropHead,
    CropHeadConfig,
    CropSamples,
    apply_crop_head,
    collate_crops,
    crop_inputs,
    group_detections,
    load_crop_head,
    mask_quality,
    maskness,
    read_crops,
    soft_dice_loss,
    unclaimed_fraction,
)
from amodal3d.models.detector import DetectorConfig, build_detector
from amodal3d.models.detector_predict import CROP_HEAD_ENLARGEMENTS, MIRRORED_DETECTIONS, DetectorPredictor, detect
from amodal3d.roi import paste

TINY = CropHeadConfig(num_categories=2, width=8, roi_size=32)


def test_maskness_by_hand():
    probs = torch.zeros(3, 4, 4)
    probs[0, :2] = 0.9          # 8 confident pixels
    probs[0, 2:] = 0.2          # outside the mask: ignored
    probs[1, 0, :2] = torch.tensor([0.6, 1.0])
    assert maskness(probs).tolist() == pytest.approx([0.9, 0.8, 0.0])  # empty mask: 0


def test_unclaimed_fraction_against_a_pixel_loop():
    generator = torch.Generator().manual_seed(3)
    masks = torch.rand(6, 9, 9, generator=generator) > 0.6
    masks[4] = masks[1]                                   # an exact duplicate of a better-scored mask
    masks[5] = False                                      # an empty mask
    scores = torch.tensor([0.9, 0.8, 0.1, 0.5, 0.3, 0.95])
    fraction = unclaimed_fraction(masks, scores)
    for i in range(6):
        above = [j for j in range(6) if scores[j] > scores[i]]
        claimed = masks[above].any(0) if above else torch.zeros(9, 9, dtype=torch.bool)
        area = int(masks[i].sum())
        expected = 1.0 if area == 0 else 1 - int((masks[i] & claimed).sum()) / area
        assert float(fraction[i]) == pytest.approx(expected)
    assert fraction[4] == 0 and fraction[0] == 1           # the duplicate is fully claimed, the best is free


def test_mask_quality_ranks_a_duplicate_below_a_second_object():
    probs = torch.zeros(3, 8, 8)
    probs[0, :4, :4] = 0.95     # object A
    probs[1, :4, :4] = 0.9      # a duplicate of A
    probs[2, 4:, 4:] = 0.7      # object B, a less confident mask
    quality = mask_quality(probs, torch.tensor([0.8, 0.8, 0.6]))
    assert quality.tolist() == pytest.approx([0.95, 0.0, 0.7])


def test_second_look_without_rescoring_scores_objectness_times_probability():
    torch.manual_seed(0)
    head = CropHead(TINY).eval()
    image = torch.rand(3, 40, 40)
    boxes = torch.tensor([[2.0, 2, 20, 20], [18, 15, 38, 36]])
    scores = torch.tensor([0.9, 0.6])
    plain = apply_crop_head(head, image, boxes, scores, rescore=False)
    assert plain.quality.tolist() == [1.0, 1.0]
    assert torch.allclose(plain.scores, plain.objectness * plain.probs.max(1).values)
    rescored = apply_crop_head(head, image, boxes, scores)
    assert torch.allclose(rescored.scores, plain.scores * rescored.quality)
    assert rescored.labels.tolist() == plain.labels.tolist()
    assert torch.equal(rescored.visible, plain.visible)


def test_group_detections_by_hand():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60], [1, 0, 10, 10.0]])
    scores = torch.tensor([0.3, 0.6, 0.5, 0.4])
    leaders, objectness = group_detections(boxes, scores, 0.7)
    assert leaders.tolist() == [1, 2]                     # best first; 0 and 3 join detection 1
    assert objectness.tolist() == pytest.approx([1.0, 0.5])  # 0.6 + 0.3 + 0.4 capped at 1
    leaders, objectness = group_detections(boxes[:0], scores[:0], 0.7)
    assert leaders.numel() == 0 and objectness.numel() == 0


def test_crop_inputs_mark_the_box_and_the_image():
    image = torch.zeros(1, 3, 40, 40)
    image[0, 0, 10:20, 10:20] = 1.0
    boxes = torch.tensor([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 10.0, 40.0]])
    x, rois = crop_inputs(image.expand(2, -1, -1, -1), boxes, torch.tensor([0, 1]), CropHeadConfig(roi_size=26))
    assert x.shape == (2, 5, 26, 26)
    # square ROI of side 1.3 x 10 = 13 px around the first box: the box covers the centre 20 x 20 cells
    assert torch.allclose(rois[0], torch.tensor([8.5, 8.5, 21.5, 21.5]))
    assert x[0, 3].sum() == 20 * 20 and x[0, 3, 13, 13] == 1
    assert torch.equal(x[0, 3] > 0, x[0, 0] > 0.5)        # the red square fills its box
    assert x[0, 4].min() == 1                              # inside the image everywhere
    assert 0 < x[1, 4].mean() < 1                          # the tall box's square ROI leaves the image


def _shapes(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images with one random-coloured square (category 1) or disc (category 2) on noise."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g) * 0.3
    labels = torch.randint(1, 3, (n,), generator=g)
    masks = torch.zeros(n, size, size)
    boxes = torch.zeros(n, 4)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for i in range(n):
        r = float(torch.empty(1).uniform_(6, 10, generator=g))
        cx, cy = (float(v) for v in torch.empty(2).uniform_(r + 1, size - r - 1, generator=g))
        if labels[i] == 1:
            masks[i] = ((xx - cx).abs() < r) & ((yy - cy).abs() < r)
        else:
            masks[i] = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        images[i][:, masks[i] > 0] = torch.rand(3, 1, generator=g) * 0.6 + 0.4
        boxes[i] = torch.tensor([cx - r, cy - r, cx + r, cy + r])
    return images, labels, masks, boxes


@pytest.mark.slow
def test_crop_head_learns_categories_and_masks():
    torch.manual_seed(0)
    head = CropHead(TINY)
    optimiser = torch.optim.Adam(head.parameters(), 3e-3)
    for step in range(120):
        images, labels, masks, boxes = _shapes(32, step)
        x, rois = crop_inputs(images, boxes, torch.arange(32), TINY)
        visible = crop_inputs(masks[:, None].expand(-1, 3, -1, -1), boxes, torch.arange(32), TINY)[0][:, 0]
        _, losses = head({"x": x}, {"labels": labels, "visible": (visible > 0.5).float()})
        optimiser.zero_grad()
        sum(losses.values()).backward()
        optimiser.step()
    images, labels, masks, boxes = _shapes(64, 10_000)
    correct, ious = 0, []
    for i in range(64):
        look = apply_crop_head(head, images[i], boxes[i:i + 1], torch.tensor([0.9]))
        correct += int(look.labels[0] == labels[i])
        predicted = look.visible[0] > 0.5
        ious.append(float((predicted & (masks[i] > 0)).sum() / (predicted | (masks[i] > 0)).sum()))
        # objectness x probability x mask quality
        assert look.scores[0] == pytest.approx(0.9 * float(look.probs[0].max() * look.quality[0]))
        assert look.quality[0] == pytest.approx(float(maskness(look.visible)[0]))  # alone: nothing claimed
    assert correct / 64 >= 0.9
    assert np.mean(ious) >= 0.8


def test_soft_dice_loss_against_a_pixel_reference_and_its_gradient():
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 8, requires_grad=True)
    targets = (torch.rand(3, 8, 8) > 0.6).float()
    targets[2] = 0  # an empty mask stays finite
    expected = []
    for p, t in zip(torch.sigmoid(logits).tolist(), targets.tolist()):
        p, t = np.array(p).ravel(), np.array(t).ravel()
        expected.append(1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1))
    loss = soft_dice_loss(logits, targets)
    assert loss.item() == pytest.approx(np.mean(expected), abs=1e-6)
    loss.backward()
    # raising a logit on the target lowers the loss, raising one off it raises the loss
    grad, on = logits.grad[0], targets[0] > 0
    assert (grad[on] < 0).all() and (grad[~on] > 0).all()
    perfect = torch.where(targets > 0, 20.0, -20.0)
    assert soft_dice_loss(perfect, targets).item() == pytest.approx(0, abs=1e-6)


def test_dice_weight_adds_its_loss_term():
    x = torch.rand(2, 5, 32, 32)
    targets = {"labels": torch.tensor([1, 2]), "visible": (torch.rand(2, 32, 32) > 0.5).float()}
    assert set(CropHead(TINY)({"x": x}, targets)[1]) == {"loss_crop_class", "loss_crop_mask"}
    out, losses = CropHead(CropHeadConfig(**{**to_dict(TINY), "mask_dice": 0.5}))({"x": x}, targets)
    expected = 0.5 * soft_dice_loss(out.mask_logits, targets["visible"])
    assert losses["loss_crop_dice"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses["loss_crop_dice"].item() > 0


def test_crop_samples_follow_the_ground_truth(tiny_dataset):
    dataset = AmodalDataset(tiny_dataset, "train")
    config = CropHeadConfig(roi_size=32, box_jitter=0.0)
    samples = CropSamples(dataset, config, "amodal")
    inputs, targets = samples[0]
    image, target = dataset[0]
    k = len(target["labels"])
    assert inputs["x"].shape == (k, 5, 32, 32) and targets["visible"].shape == (k, 32, 32)
    assert torch.equal(targets["labels"], target["labels"])
    for i in range(k):  # the visible target lies inside the (unjittered) amodal box channel
        inside = inputs["x"][i, 3] > 0
        assert targets["visible"][i].sum() > 0
        assert (targets["visible"][i].bool() & ~inside).sum() <= 0.1 * targets["visible"][i].sum()
    jittered = CropSamples(dataset, CropHeadConfig(roi_size=32), "amodal", seed=1)
    a, b = jittered[0][0]["x"], jittered[0][0]["x"]
    assert torch.equal(a, b)                       # seeded per (seed, epoch, index)
    jittered.set_epoch(1)
    assert not torch.equal(a, jittered[0][0]["x"])  # new boxes each epoch
    batch_inputs, batch_targets = collate_crops([samples[0], samples[1]])
    assert len(batch_inputs["x"]) == len(batch_targets["labels"]) == k + len(dataset[1][1]["labels"])


def _crop_head_run(tiny_dataset, tmp_path, out: str, *extra: str) -> dict:
    """``train crop-head`` into ``tmp_path / out`` (3 iterations per epoch: 6 images, batch 2) -> its weights.
    A constant schedule: the learning rate of an iteration does not depend on --max-iters."""
    config = tmp_path / "crop.yaml"
    config.write_text("model: {width: 8, roi_size: 32}\n"
                      "train: {epochs: 2, batch_size: 2, workers: 0, checkpoint_every: 1, log_every: 1, "
                      "schedule: constant}\n")
    assert main(["train", "crop-head", "--config", str(config), "--data", str(tiny_dataset), "--out",
                 str(tmp_path / out), "--quiet", *extra]) == 0
    return load_crop_head(tmp_path / out / "model.safetensors").state_dict()


def _changed(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_train_crop_head_cli_resumes_and_exports(tiny_dataset, tmp_path):
    one_epoch = _crop_head_run(tiny_dataset, tmp_path, "run", "--max-iters", "3")
    resumed = _crop_head_run(tiny_dataset, tmp_path, "run", "--max-iters", "4")  # resumes at iteration 3
    out = tmp_path / "run"
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if "event" in e].count("resume") == 1
    assert max(e["iteration"] for e in events if "iteration" in e) == 4
    # the resumed run ends where an uninterrupted one does (augmentation, batch norm and all), bit for bit
    assert _changed(resumed, _crop_head_run(tiny_dataset, tmp_path, "uninterrupted", "--max-iters", "4")) == []
    assert _changed(resumed, one_epoch)  # the fourth step moved them
    config = tmp_path / "crop.yaml"
    head = load_crop_head(out / "model.safetensors")
    assert head.config.width == 8 and head.config.num_categories == 13
    tuned = tmp_path / "tuned"  # fine-tuning: starts from the run's weights, with a schedule of its own
    assert main(["train", "crop-head", "--config", str(config), "--data", str(tiny_dataset), "--out", str(tuned),
                 "--quiet", "--init", str(out / "model.safetensors"), "--max-iters", "1", "--lr", "1e-12",
                 "--batch-size", "1"]) == 0
    after = dict(load_crop_head(tuned / "model.safetensors").named_parameters())  # (BN statistics do move)
    assert all(torch.allclose(value, after[k], atol=1e-6) for k, value in head.named_parameters())


def test_train_crop_head_resumed_inside_an_epoch_equals_an_uninterrupted_run(tiny_dataset, tmp_path):
    _crop_head_run(tiny_dataset, tmp_path, "run", "--max-iters", "2")
    resumed = _crop_head_run(tiny_dataset, tmp_path, "run", "--max-iters", "3")  # resumes at iteration 2 of 3
    assert _changed(resumed, _crop_head_run(tiny_dataset, tmp_path, "uninterrupted", "--max-iters", "3")) == []


def test_load_crop_head_refuses_other_weights(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04 not safetensors")
    with pytest.raises(WeightsError, match=r"bad\.safetensors: a Python pickle; .*never unpickles"):
        load_crop_head(tmp_path / "bad.safetensors")
    save_weights(tmp_path / "other", CropHead(TINY).state_dict(), "refine", to_dict(TINY))
    with pytest.raises(WeightsError, match="refine"):
        load_crop_head(tmp_path / "other.safetensors")
    save_weights(tmp_path / "wide", CropHead(TINY).state_dict(), WEIGHTS_KIND, to_dict(CropHeadConfig(width=16)))
    with pytest.raises(WeightsError, match=r"wide\.safetensors: weights do not match the model built from the "
                                           r"config \(shape mismatch: enc1\.0\.0\.weight \(8, 5, 3, 3\) vs \(16, 5"):
        load_crop_head(tmp_path / "wide.safetensors")


def test_detector_predictor_takes_labels_and_visible_masks_from_the_crop_head():
    torch.manual_seed(0)
    detector = build_detector(DetectorConfig(heads="both", num_classes=3, min_size=64, max_size=64,
                                             box_score_thresh=0.0))
    head = CropHead(TINY)
    image = (np.random.default_rng(0).uniform(0, 255, (64, 64, 3))).astype(np.uint8)
    plain = DetectorPredictor(detector, score_threshold=0.0).predict(image)
    looked = DetectorPredictor(detector, score_threshold=0.0, crop_head=head).predict(image)
    assert len(plain.labels) > 0
    one_view = DetectorPredictor(detector, score_threshold=0.0, crop_head=head, mirrored_detections=False)
    assert 0 < len(one_view.predict(image).labels) <= len(plain.labels)  # one entry per object
    assert 0 < len(looked.labels) <= 2 * len(plain.labels)  # ... of the image's and its mirror's detections
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    out, _ = detector.eval()([tensor])
    single = DetectorPredictor(detector, score_threshold=0.0, crop_head=head, crop_head_flip=False,
                               crop_head_enlargements=(), mirrored_detections=False).predict(image)
    once = apply_crop_head(head, tensor, out.boxes[0], out.scores[0])
    assert np.allclose(single.scores, once.scores.sort(descending=True).values.numpy())
    # by default step 1 adds the mirror image's detections, and the head reads each crop as it is and
    # mirrored, at its own enlargement and at 1.15
    assert CROP_HEAD_ENLARGEMENTS == (1.15,) and MIRRORED_DETECTIONS
    plain = apply_crop_head(head, tensor, out.boxes[0], out.scores[0], flip=True, enlargements=(1.15,))
    assert not torch.allclose(plain.probs, once.probs)
    mirrored = apply_crop_head(head, tensor, out.boxes[0], out.scores[0], flip=True)
    assert not torch.allclose(plain.visible, mirrored.visible)
    out = detect(detector, tensor, mirrored=True)
    expected = apply_crop_head(head, tensor, out.boxes[0], out.scores[0], flip=True, enlargements=(1.15,))
    assert len(expected.leaders) != len(plain.leaders) or not torch.allclose(expected.scores, plain.scores)
    order = torch.argsort(expected.scores, descending=True, stable=True)
    assert looked.labels.tolist() == expected.labels[order].tolist()
    assert np.array_equal(looked.visible_masks, (expected.visible[order] > 0.5).numpy())
    assert np.array_equal(looked.amodal_masks, (out.amodal_masks[0][expected.leaders[order]] > 0.5).numpy())
    assert np.allclose(looked.scores, expected.scores[order].numpy())
    # the threshold keeps objects by objectness (is something there?), not by the label's probability
    threshold = float(expected.objectness.max())
    kept = DetectorPredictor(detector, score_threshold=threshold, crop_head=head).predict(image)
    assert len(kept.labels) == int((expected.objectness >= threshold).sum()) >= 1
    assert kept.scores.max() < threshold  # kept although its score (x p(label) < 1) is below it
    assert apply_crop_head(head, tensor, out.boxes[0], out.scores[0], min_objectness=threshold,
                       flip=True, enlargements=(1.15,)).labels.tolist() == \
        expected.labels[expected.objectness >= threshold].tolist()
    assert np.allclose(looked.extras["objectness"], expected.objectness[order].numpy())
    # keep_by="score" (amodal3d predict) keeps objects by the score a user sees
    threshold = float(looked.scores.max() + looked.scores.min()) / 2
    by_score = DetectorPredictor(detector, score_threshold=threshold, crop_head=head, keep_by="score").predict(image)
    assert np.array_equal(by_score.scores, looked.scores[looked.scores >= threshold])
    assert 1 <= len(by_score.labels) < len(looked.labels) and by_score.scores.min() >= threshold
    with pytest.raises(ValueError, match="keep_by"):
        DetectorPredictor(detector, crop_head=head, keep_by="label")


def test_step1_with_a_crop_head_runs_the_mask_heads_on_the_objects_it_keeps_only():
    torch.manual_seed(0)
    detector = build_detector(DetectorConfig(heads="both", num_classes=3, min_size=64, max_size=64,
                                             box_score_thresh=0.0)).eval()
    head = CropHead(TINY)
    image = (np.random.default_rng(0).uniform(0, 255, (64, 64, 3))).astype(np.uint8)
    rois = {"visible": [], "amodal": []}
    detector.roi_heads.mask_head.register_forward_hook(lambda m, i, o: rois["visible"].append(len(i[0])))
    detector.roi_heads.amodal_mask_head.register_forward_hook(lambda m, i, o: rois["amodal"].append(len(i[0])))
    every = DetectorPredictor(detector, score_threshold=0.0, crop_head=head).predict(image)
    threshold = float(every.scores.max() + every.scores.min()) / 2
    kept = DetectorPredictor(detector, score_threshold=threshold, crop_head=head, keep_by="score").predict(image)
    assert rois["visible"] == []  # the crop head gives the visible masks
    assert rois["amodal"] == [len(every.labels), len(kept.labels)] and 0 < len(kept.labels) < len(every.labels)
    assert np.array_equal(kept.amodal_masks, every.amodal_masks[every.scores >= threshold])
    plain = DetectorPredictor(detector, score_threshold=0.0).predict(image)  # no crop head: both heads
    assert rois["visible"] == [len(plain.labels)] and rois["amodal"][-1] == len(plain.labels)


def test_read_crops_in_channels_last_equal_a_plain_forward():
    torch.manual_seed(0)
    head = CropHead(TINY).eval()
    image = torch.rand(3, 48, 64)
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 30.0]])
    probs, visible = read_crops(head, image, boxes)
    x, rois = crop_inputs(image[None], boxes, torch.zeros(2, dtype=torch.long), TINY)
    with torch.no_grad():
        out, _ = head({"x": x})
    assert torch.allclose(probs, out.class_logits.softmax(1), atol=1e-5)
    assert torch.allclose(visible, paste(torch.sigmoid(out.mask_logits), rois, 48, 64), atol=1e-5)


def test_augment_config_is_part_of_the_experiment():
    from amodal3d.engine.config import load_experiment
    from amodal3d.models.crop_head import CropHeadExperiment

    experiment = load_experiment(CropHeadExperiment, CONFIG_DIR / "crop_head_cpu.yaml")
    assert isinstance(experiment.augment, AugmentConfig) and experiment.augment.hflip == 0.5
    assert experiment.box_targets == "amodal"


def test_flipped_second_look_is_mirror_symmetric():
    torch.manual_seed(0)
    head = CropHead(TINY)
    for module in head.modules():  # batch-norm statistics of real crops, so that readings differ per crop
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    image = torch.rand(3, 48, 64)
    with torch.no_grad():
        head.train()({"x": torch.rand(16, 5, 32, 32)})
    head.eval()
    boxes, scores = torch.tensor([[5.0, 8.0, 30.0, 40.0], [33.0, 2.0, 60.0, 20.0]]), torch.tensor([0.9, 0.6])
    mirrored_boxes = torch.stack([64 - boxes[:, 2], boxes[:, 1], 64 - boxes[:, 0], boxes[:, 3]], 1)
    a = apply_crop_head(head, image, boxes, scores, flip=True)
    b = apply_crop_head(head, image.flip(-1), mirrored_boxes, scores, flip=True)
    # averaging the two readings makes the answer independent of which way the image faces
    assert torch.allclose(a.probs, b.probs, atol=1e-5)
    assert torch.allclose(a.visible, b.visible.flip(-1), atol=1e-4)
    plain = apply_crop_head(head, image, boxes, scores)
    assert not torch.allclose(plain.visible, a.visible, atol=1e-3)  # the mirrored reading counts


def test_read_crops_at_another_enlargement():
    torch.manual_seed(0)
    head = CropHead(TINY).eval()
    image, boxes = torch.rand(3, 48, 48), torch.tensor([[10.0, 12.0, 30.0, 28.0]])
    probs, masks = read_crops(head, image, boxes)
    same = read_crops(head, image, boxes, enlarge=TINY.enlarge)
    assert torch.equal(same[0], probs) and torch.equal(same[1], masks)
    _, wider = read_crops(head, image, boxes, enlarge=2 * TINY.enlarge)
    assert (wider > 0).sum() > (masks > 0).sum()  # pasted back over a crop twice as wide


def test_second_look_averages_its_readings_at_every_enlargement():
    torch.manual_seed(0)
    head = CropHead(TINY).eval()
    image = torch.rand(3, 48, 64)
    boxes, scores = torch.tensor([[5.0, 8.0, 30.0, 40.0], [33.0, 2.0, 60.0, 20.0]]), torch.tensor([0.9, 0.6])
    look = apply_crop_head(head, image, boxes, scores, flip=True, enlargements=(1.15, 1.5))
    readings = [read_crops(head, image, boxes[look.leaders], True, e) for e in (None, 1.15, 1.5)]
    assert torch.allclose(look.probs, sum(r[0] for r in readings) / 3, atol=1e-6)
    assert torch.allclose(look.visible, sum(r[1] for r in readings) / 3, atol=1e-6)
    own = apply_crop_head(head, image, boxes, scores, flip=True)
    assert torch.equal(own.visible, readings[0][1]) and not torch.allclose(own.visible, look.visible, atol=1e-3)
