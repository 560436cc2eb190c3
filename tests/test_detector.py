"""Step 1 detector: presets and heads, losses, detection outputs, given-visible predictions, weights,
training through the CLI (loss goes down, exact resume) and DDP on two CPU processes."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from amodal3d.cli import main
from amodal3d.data.dataset import AmodalDataset, collate
from amodal3d.engine.config import ConfigError, load_config, load_experiment
from amodal3d.engine.distributed import cleanup_distributed
from amodal3d.engine.weights import load_weights, save_weights
from amodal3d.errors import WeightsError
from amodal3d.models.detector import (
    DetectorConfig,
    DetectorOutput,
    build_detector,
    load_detector,
    parameter_count,
    resolve_config,
    save_detector,
    select_targets,
)
from amodal3d.models.detector_predict import DetectorPredictor, detect, detect_boxes
from amodal3d.models.detector_train import DetectorExperiment, train_detector
from amodal3d.structures import GivenVisible, Instances

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "amodal3d" / "configs"
LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
# small inputs (and, for r50-fpn, fewer proposals for its 4conv box head and fewer detections for its
# 256-channel mask heads: their cost, not the backbone's, dominates) keep the tests fast; the architecture
# is the preset's
SMALL = {"min_size": 128, "max_size": 128}
FEWER = {"rpn_post_nms_top_n_train": 50, "rpn_post_nms_top_n_test": 30, "box_batch_size_per_image": 16,
         "detections_per_image": 10}


def toy_batch(size: int = 128) -> tuple[list[torch.Tensor], list[dict]]:
    """Two images with two instances each; instance 0 is partly hidden (amodal box larger)."""
    images, targets = [], []
    for shift in (0, 20):
        visible = torch.zeros(2, size, size, dtype=torch.uint8)
        visible[0, 20 + shift:60 + shift, 30:70] = 1
        visible[1, 70:110, 10 + shift:50 + shift] = 1
        amodal = visible.clone()
        amodal[0, 20 + shift:60 + shift, 30:90] = 1
        box = lambda m: [float(m.any(0).nonzero().min()), float(m.any(1).nonzero().min()),  # noqa: E731
                         float(m.any(0).nonzero().max() + 1), float(m.any(1).nonzero().max() + 1)]
        images.append(torch.rand(3, size, size, generator=torch.Generator().manual_seed(shift)))
        targets.append({"labels": torch.tensor([3, 7]), "visible_masks": visible, "amodal_masks": amodal,
                        "visible_boxes": torch.tensor([box(m) for m in visible]),
                        "amodal_boxes": torch.tensor([box(m) for m in amodal])})
    return images, targets


@pytest.mark.parametrize("preset", ["cpu-small", pytest.param("r50-fpn", marks=pytest.mark.slow)])
@pytest.mark.parametrize("heads", ["visible", "amodal", "both"])
def test_presets_and_heads_losses_and_outputs(preset, heads):
    torch.manual_seed(0)
    fewer = FEWER if preset == "r50-fpn" else {}
    model = build_detector(DetectorConfig(preset=preset, heads=heads, **SMALL, **fewer))
    images, targets = toy_batch()
    output, losses = model(images, targets)
    expected = LOSSES | ({"loss_amodal_mask"} if heads == "both" else set())
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert isinstance(output, DetectorOutput) and len(output) == 0  # no detection asked for
    sum(losses.values()).backward()
    if heads == "both":
        assert model.roi_heads.amodal_mask_predictor.mask_fcn_logits.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        output, losses = model([images[0], images[1][:, :96, :112]])
    assert losses == {} and len(output) == 2
    for i, (h, w) in enumerate([(128, 128), (96, 112)]):
        n = len(output.boxes[i])
        assert output.boxes[i].shape == (n, 4)
        assert output.labels[i].shape == (n,) and output.scores[i].shape == (n,)
        assert output.labels[i].dtype == torch.int64 and 0 < n <= model.config.detections_per_image
        assert torch.all(output.scores[i][:-1] >= output.scores[i][1:])
        for masks in (output.visible_masks, output.amodal_masks):
            if masks is not None:
                assert masks[i].shape == (n, h, w) and masks[i].min() >= 0 and masks[i].max() <= 1
    assert (output.visible_masks is None) == (heads == "amodal")
    assert (output.amodal_masks is None) == (heads == "visible")


def test_losses_and_detections_do_not_depend_on_train_mode():
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(heads="both", **SMALL))
    images, targets = toy_batch()
    model.eval()
    torch.manual_seed(1)
    eval_out, eval_losses = model(images, targets, detect=True)
    model.train()
    torch.manual_seed(1)
    train_out, train_losses = model(images, targets, detect=True)
    assert eval_losses.keys() == train_losses.keys()
    assert all(torch.allclose(eval_losses[k], train_losses[k]) for k in eval_losses)  # GroupNorm: no mode
    assert all(torch.equal(a, b) for a, b in zip(eval_out.boxes, train_out.boxes))
    assert model.training and model.rpn.training and model.roi_heads.training  # modes restored


def test_mirrored_detections_add_the_mirror_images_detections_mapped_back():
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(heads="both", box_score_thresh=0.0, detections_per_image=20,
                                          **SMALL)).eval()
    image = torch.rand(3, 96, 128)  # not square: a mapping that swaps the axes would show
    together, _ = model([image, image.flip(-1)])
    plain = detect(model, image)
    assert torch.equal(plain.boxes[0], model([image])[0].boxes[0])
    both = detect(model, image, mirrored=True)
    assert len(both.boxes[0]) == len(together.boxes[0]) + len(together.boxes[1]) > 0
    assert torch.all(both.scores[0][:-1] >= both.scores[0][1:])  # high to low, as DetectorOutput's are
    assert torch.isclose(both.scores[0].sum(), together.scores[0].sum() + together.scores[1].sum())
    for k in range(len(together.boxes[1])):  # each mirror-image detection, x -> 128 - x
        x1, y1, x2, y2 = together.boxes[1][k].tolist()
        same = torch.isclose(both.boxes[0], torch.tensor([128 - x2, y1, 128 - x1, y2]), atol=1e-4).all(1)
        same &= torch.isclose(both.scores[0], together.scores[1][k])
        assert same.any()
        j = int(torch.where(same)[0][0])
        for masks in (both.visible_masks[0], both.amodal_masks[0]):  # masks lie inside their boxes
            ys, xs = torch.where(masks[j] > 0.5)
            if len(xs):
                assert xs.min() >= 128 - x2 - 1 and xs.max() <= 128 - x1 + 1


@pytest.mark.parametrize("heads,mirrored", [("both", True), ("amodal", False)])
def test_masks_on_demand_equal_torchvisions_masks_of_every_detection(heads, mirrored):
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(heads=heads, box_score_thresh=0.0, detections_per_image=20,
                                          **SMALL)).eval()
    image = torch.rand(3, 96, 128)
    views = [image, image.flip(-1)] if mirrored else [image]
    with torch.no_grad():
        reference, _ = model(views)  # torchvision's RoIHeads, mask branch on every detection
    order = torch.argsort(torch.cat(reference.scores), descending=True, stable=True)

    def merged(masks):  # the mirror image's masks mirrored back, in the order of the scores
        return torch.cat([m.flip(-1) if v else m for v, m in enumerate(masks)])[order]

    pending = detect_boxes(model, image, mirrored)
    assert pending.output.visible_masks is None and pending.output.amodal_masks is None
    assert torch.allclose(pending.output.scores[0], torch.cat(reference.scores)[order])
    chosen = torch.tensor([len(order) - 1, 0, len(order) // 2])  # any subset, in any order
    assert mirrored <= bool((pending.view[chosen] == 1).any())  # both views are read
    for kind, masks in (("visible", reference.visible_masks), ("amodal", reference.amodal_masks)):
        if masks is None:
            with pytest.raises(ValueError, match=f"no {kind} mask head"):
                pending.masks(kind, chosen)
            continue
        expected = merged(masks)
        assert torch.allclose(pending.masks(kind, chosen), expected[chosen], atol=1e-5)
        assert torch.allclose(pending.masks(kind), expected, atol=1e-5)
        assert pending.masks(kind, chosen[:0]).shape == (0, 96, 128)


def test_cpu_small_size_limit(tmp_path):
    for heads in ("visible", "amodal", "both"):
        model = build_detector(DetectorConfig(preset="cpu-small", heads=heads))
        assert parameter_count(model) * 2 <= 15e6, heads  # fp16 bytes
    tensor_path, _ = save_detector(model, tmp_path / "m", dtype=torch.float16)
    assert tensor_path.stat().st_size <= 15e6


def test_select_targets_per_head():
    _, targets = toy_batch()
    vis = select_targets(targets, "visible", "visible")[0]
    assert torch.equal(vis["boxes"], targets[0]["visible_boxes"])
    assert torch.equal(vis["masks"], targets[0]["visible_masks"])
    amo = select_targets(targets, "amodal", "amodal")[0]
    assert torch.equal(amo["boxes"], targets[0]["amodal_boxes"])
    assert torch.equal(amo["masks"], targets[0]["amodal_masks"])
    both = select_targets(targets, "both", "amodal")[0]
    assert torch.equal(both["masks"], targets[0]["visible_masks"])
    assert torch.equal(both["amodal_masks"], targets[0]["amodal_masks"])
    degenerate = dict(targets[0], visible_boxes=torch.tensor([[5.0, 5.0, 5.5, 20.0], [1.0, 1.0, 9.0, 9.0]]))
    kept = select_targets([degenerate], "visible", "visible")[0]
    assert kept["labels"].tolist() == [7] and kept["masks"].shape[0] == 1


def test_transform_resizes_amodal_masks_like_masks():
    model = build_detector(DetectorConfig(heads="both", min_size=256, max_size=256))
    images, targets = toy_batch()
    chosen = select_targets(targets, "both", "amodal")
    _, resized = model.transform(images, chosen)
    assert resized[0]["amodal_masks"].shape == resized[0]["masks"].shape == (2, 256, 256)
    _, alone = model.transform.resize(images[0], {"boxes": torch.zeros(0, 4),
                                                  "masks": chosen[0]["amodal_masks"]})
    assert torch.equal(resized[0]["amodal_masks"], alone["masks"])
    assert torch.equal(chosen[0]["amodal_masks"], targets[0]["amodal_masks"])  # inputs untouched


def test_given_visible_predictions_keep_the_given_instances():
    torch.manual_seed(0)
    images, targets = toy_batch()
    image = (images[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    t = targets[0]
    given = GivenVisible(t["visible_masks"].bool().numpy(), t["labels"].numpy(), t["visible_boxes"].numpy())
    for heads, name in (("visible", "visible"), ("amodal", "maskrcnn-amodal"), ("both", "orcnn")):
        model = build_detector(DetectorConfig(heads=heads, **SMALL))
        predictor = DetectorPredictor(model, score_threshold=0.0)
        assert predictor.name == name
        out = predictor.predict(image, given)
        assert isinstance(out, Instances)
        assert out.labels.tolist() == [3, 7] and np.array_equal(out.visible_masks, given.visible_masks)
        assert out.amodal_masks.shape == (2, 128, 128) and out.amodal_masks.dtype == bool
        if heads == "visible":
            assert np.array_equal(out.amodal_masks, given.visible_masks)
        else:  # regressed boxes contain the given visible boxes
            amodal_boxes = out.extras["amodal_boxes"]
            assert np.all(amodal_boxes[:, :2] <= given.boxes[:, :2] + 1e-4)
            assert np.all(amodal_boxes[:, 2:] >= given.boxes[:, 2:] - 1e-4)
        e2e = predictor.predict(image)
        assert e2e.visible_masks.shape[1:] == (128, 128) and np.all(np.diff(e2e.scores) <= 0)
        assert len(e2e.labels) > 0  # score_threshold 0: an untrained model still returns boxes
        if heads == "amodal":
            assert np.array_equal(e2e.visible_masks, e2e.amodal_masks)
        if heads == "visible":
            assert "amodal_probs" not in e2e.extras
        else:  # the probabilities behind its amodal masks, for steps 2-5 to weigh
            probs = e2e.extras["amodal_probs"]
            assert probs.dtype == np.float16 and probs.shape == e2e.amodal_masks.shape
            confident = np.abs(probs.astype(np.float32) - 0.5) > 1e-2  # away from float16 rounding
            assert np.array_equal((probs > 0.5)[confident], e2e.amodal_masks[confident])
    empty = GivenVisible(np.zeros((0, 128, 128), bool), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    assert len(predictor.predict(image, empty).labels) == 0


def test_weights_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(heads="both", **SMALL)).eval()
    save_detector(model, tmp_path / "model.safetensors", extra={"categories": []})
    loaded = load_detector(tmp_path / "model.safetensors", expected=DetectorConfig(heads="both", **SMALL))
    assert loaded.config == model.config
    images, _ = toy_batch()
    with torch.no_grad():
        a, _ = model(images)
        b, _ = loaded(images)
    assert all(torch.equal(x, y) for x, y in zip(a.amodal_masks, b.amodal_masks))
    assert load_detector(tmp_path).config == model.config  # a run folder works too
    with pytest.raises(WeightsError, match="another detector config.*heads"):
        load_detector(tmp_path / "model.safetensors", expected=DetectorConfig(heads="visible", **SMALL))
    torch.save(model.state_dict(), tmp_path / "pickled.safetensors")
    with pytest.raises(WeightsError, match="never unpickles"):
        load_detector(tmp_path / "pickled.safetensors")
    info = json.loads((tmp_path / "model.json").read_text())
    info["config"]["fpn_channels"] = 64
    (tmp_path / "model.json").write_text(json.dumps(info))
    with pytest.raises(WeightsError, match="config does not match"):
        load_detector(tmp_path / "model.safetensors")
    save_weights(tmp_path / "other", model.state_dict(), "detector", info["config"])  # consistent files
    with pytest.raises(WeightsError, match="do not match the model built from the config.*shape mismatch"):
        load_detector(tmp_path / "other.safetensors")


def test_config_files_load():
    expected = {"detector_cpu_small.yaml": ("cpu-small", "visible"),
                "detector_r50_fpn.yaml": ("r50-fpn", "visible"),
                "maskrcnn_amodal_cpu_small.yaml": ("cpu-small", "amodal"),
                "orcnn_cpu_small.yaml": ("cpu-small", "both")}
    for name, (preset, heads) in expected.items():
        config = resolve_config(load_experiment(DetectorExperiment, CONFIGS / name).model)
        assert (config.preset, config.heads) == (preset, heads), name


def test_unknown_key_in_experiment_is_a_clear_error(tmp_path):
    path = tmp_path / "x.yaml"
    text = (CONFIGS / "detector_cpu_small.yaml").read_text()
    path.write_text(text.replace("  heads: visible", "  head: visible"))
    with pytest.raises(ConfigError, match=r"x\.yaml: unknown key 'model\.head'"):
        load_config(path, DetectorExperiment)
    argv = ["train", "detector", "--config", str(path), "--data", "nowhere", "--out", str(tmp_path / "r")]
    assert main(argv) == 2


# ------------------------------------------------------------------------------------------------ training
def fast_experiment(**train) -> DetectorExperiment:
    return DetectorExperiment(
        model=DetectorConfig(heads="both", **SMALL),
        train=dataclasses.replace(load_experiment(DetectorExperiment, CONFIGS / "orcnn_cpu_small.yaml").train, **{
            "epochs": 1, "batch_size": 2, "workers": 0, "warmup_iters": 2, "checkpoint_every": 2,
            "log_every": 1, **train}))


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss(tiny_dataset):
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(heads="both", **SMALL))
    images, targets = collate([AmodalDataset(tiny_dataset, "train")[i] for i in range(2)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(8):
        _, losses = model(list(images), list(targets))
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.7 * history[0], history


def test_cli_train_then_load(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    text = (CONFIGS / "orcnn_cpu_small.yaml").read_text().replace(
        "  heads: both", "  heads: both\n  min_size: 128\n  max_size: 128")
    config.write_text(text)
    out = tmp_path / "run"
    argv = ["train", "detector", "--config", str(config), "--data", str(tiny_dataset), "--out", str(out),
            "--device", "cpu", "--max-iters", "2", "--batch-size", "2", "--workers", "0", "--quiet"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out / "model.safetensors")
    for name in ("model.safetensors", "model.json", "log.jsonl", "config.yaml", "checkpoint.pt"):
        assert (out / name).is_file(), name
    model = load_detector(out / "model.safetensors")
    assert model.config.heads == "both" and model.config.min_size == 128
    info = json.loads((out / "model.json").read_text())
    assert info["extra"]["iterations"] == 2 and len(info["categories"]) == 13  # the dataset's, recorded
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert [r["iteration"] for r in logged] == [2] and "loss_amodal_mask" in logged[0]  # log_every 20 + last
    if not torch.cuda.is_available():
        assert main(argv + ["--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(tiny_dataset, tmp_path):
    experiment = fast_experiment(epochs=2, checkpoint_every=2)  # 6 images, batch 2: 3 per epoch, 6 in all
    full = train_detector(experiment, tiny_dataset, tmp_path / "full", device="cpu", progress=False)
    assert train_detector(experiment, tiny_dataset, tmp_path / "cut", device="cpu", progress=False,
                          stop_after=3) is None  # killed after iteration 3; last checkpoint at 2
    resumed = train_detector(experiment, tiny_dataset, tmp_path / "cut", device="cpu", progress=False)
    a, b = load_detector(full).state_dict(), load_detector(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise on CPU


def test_init_starts_from_given_weights_and_refuses_others(tiny_dataset, tmp_path):
    first = train_detector(fast_experiment(max_iters=2), tiny_dataset, tmp_path / "a", device="cpu", progress=False)
    still = fast_experiment(max_iters=1, lr=1e-12, seed=5)  # a step that moves nothing measurable
    tuned = train_detector(still, tiny_dataset, tmp_path / "b", device="cpu", progress=False, init=first)
    fresh = train_detector(still, tiny_dataset, tmp_path / "c", device="cpu", progress=False)
    a, b, c = (load_detector(p).state_dict() for p in (first, tuned, fresh))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k].float(), c[k].float(), atol=1e-6) for k in a)
    assert str(first) in (tmp_path / "b" / "config.yaml").read_text()  # the run records where it started
    head = tmp_path / "head.safetensors"
    save_weights(head, {"w": torch.zeros(1)}, "crop-head", {})
    with pytest.raises(WeightsError, match="head.safetensors"):
        train_detector(still, tiny_dataset, tmp_path / "d", device="cpu", progress=False, init=head)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_detector_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from amodal3d.engine import trainer as trainer_module

    captured = {}
    fit = trainer_module.Trainer.fit

    def fit_and_keep(self, *args, **kwargs):  # keep every rank's final weights to compare them
        result = fit(self, *args, **kwargs)
        captured["state"] = result.model.state_dict()
        return result

    trainer_module.Trainer.fit = fit_and_keep
    try:
        train_detector(fast_experiment(epochs=1, batch_size=1, max_iters=2), data, out, device="cpu",
                       progress=False)
        save_weights(Path(out) / f"rank{rank}", captured["state"], "detector-rank", {"rank": rank})
    finally:
        cleanup_distributed()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_dataset, tmp_path):
    args = (2, _free_port(), str(tiny_dataset), str(tmp_path))
    torch.multiprocessing.spawn(_ddp_detector_worker, args=args, nprocs=2, join=True)
    s0, _ = load_weights(tmp_path / "rank0", "detector-rank")
    s1, _ = load_weights(tmp_path / "rank1", "detector-rank")
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r] == [1, 2] and records[0]["world_size"] == 2
    assert (tmp_path / "model.safetensors").is_file()
