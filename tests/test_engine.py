"""The generic training engine: typed configs, safetensors weights, checkpoints, augmentation, the
training loop (exact resume, DDP on two CPU processes with gloo)."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from amodal3d.engine.augment import (
    AugmentConfig,
    AugmentedDataset,
    augment_sample,
    flip_boxes,
    hflip_sample,
    mirror_azimuth,
)
from amodal3d.engine.checkpoint import (
    CheckpointError,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
)
from amodal3d.engine.config import ConfigError, dump_yaml, from_dict, load_config, to_dict
from amodal3d.engine.distributed import (
    DeviceError,
    DistInfo,
    cleanup_distributed,
    init_distributed,
    resolve_device,
)
from amodal3d.engine.trainer import ResumableSampler, TrainConfig, Trainer, TrainingError, lr_factor
from amodal3d.engine.weights import load_state_strict, load_weights, save_weights
from amodal3d.errors import WeightsError
from amodal3d.masks import mask_to_bbox, xywh_to_xyxy


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class Inner:
    size: int = 3
    ratios: tuple[float, ...] = (0.5, 1.0)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None
    pairs: tuple[tuple[int, ...], ...] = ((1,), (2, 3))


def test_config_round_trip_and_conversion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner: {size: 5, ratios: [1, 2]}\nlimit: 7\npairs: [[4, 5], [6]]\n")
    config = load_config(path, Outer)
    assert config == Outer("y", Inner(5, (1.0, 2.0)), 7, ((4, 5), (6,)))
    assert isinstance(config.inner.ratios[0], float)
    path.write_text(dump_yaml(config))
    assert load_config(path, Outer) == config
    assert to_dict(config)["pairs"] == [[4, 5], [6]]
    assert from_dict(Outer, {}) == Outer()


def test_config_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: y\ninner: {size: 5, sizee: 6}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'inner\.sizee'.*size, ratios"):
        load_config(path, Outer)
    path.write_text("nmae: y\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'nmae'"):
        load_config(path, Outer)


@pytest.mark.parametrize("text, pattern", [
    ("inner: {size: 2.5}", r"inner\.size: expected an integer, got 2\.5"),
    ("inner: {size: true}", r"inner\.size"),
    ("limit: abc", r"limit"),
    ("inner: 3", r"inner: expected a mapping"),
    ("- 1\n- 2", r"mapping at the top level"),
    ("name: [unclosed", r"malformed YAML"),
])
def test_config_type_errors(tmp_path, text, pattern):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(path, Outer)


def test_train_config_values_checked():
    with pytest.raises(ConfigError, match=r"src: batch_size: must be >= 1, got 0"):
        from_dict(TrainConfig, {"batch_size": 0}, source="src")
    with pytest.raises(ConfigError, match="optimizer.*'adam'"):
        from_dict(TrainConfig, {"optimizer": "adam"}, source="src")


# ------------------------------------------------------------------------------------------------ schedule
def test_lr_factor_warmup_cosine_step():
    config = TrainConfig(warmup_iters=10, warmup_factor=0.1, schedule="cosine")
    assert lr_factor(0, 100, config) == pytest.approx(0.1)
    assert lr_factor(5, 100, config) == pytest.approx(0.55 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert lr_factor(50, 100, config) == pytest.approx(0.5)
    assert lr_factor(100, 100, config) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    values = [lr_factor(i, 100, step) for i in (0, 49, 50, 74, 75, 99)]
    assert values == pytest.approx([1, 1, .1, .1, .01, .01])
    assert lr_factor(3, 100, TrainConfig(schedule="constant")) == 1.0


# ------------------------------------------------------------------------------------------------ weights
def test_weights_round_trip_and_fp16(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    module(torch.rand(2, 3, 8, 8))  # non-trivial BN buffers (incl. int64 num_batches_tracked)
    save_weights(tmp_path / "m", module.state_dict(), "toy", {"channels": 4}, extra={"note": "hi"})
    state, config = load_weights(tmp_path / "m.safetensors", "toy")
    assert config == {"channels": 4}
    assert json.loads((tmp_path / "m.json").read_text())["extra"] == {"note": "hi"}
    clone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    load_state_strict(clone, state, "m")
    for (k, a), b in zip(module.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), k
    save_weights(tmp_path / "h", module.state_dict(), "toy", {"channels": 4}, dtype=torch.float16)
    state16, _ = load_weights(tmp_path / "h", "toy")
    assert state16["0.weight"].dtype == torch.float16
    assert state16["1.num_batches_tracked"].dtype == torch.int64


def test_weights_refuse_pickles_and_mismatches(tmp_path):
    module = nn.Linear(3, 2)
    torch.save(module.state_dict(), tmp_path / "zip.safetensors")
    (tmp_path / "zip.json").write_text("{}")
    with pytest.raises(WeightsError, match="zip archive.*never unpickles"):
        load_weights(tmp_path / "zip.safetensors", "toy")
    (tmp_path / "raw.safetensors").write_bytes(pickle.dumps({"weight": [1.0]}))
    with pytest.raises(WeightsError, match="pickle.*never unpickles"):
        load_weights(tmp_path / "raw.safetensors", "toy")
    save_weights(tmp_path / "ok", module.state_dict(), "toy", {"a": 1})
    with pytest.raises(WeightsError, match="holds 'toy' weights, expected 'detector'"):
        load_weights(tmp_path / "ok", "detector")
    info = json.loads((tmp_path / "ok.json").read_text())
    info["config"]["a"] = 2
    (tmp_path / "ok.json").write_text(json.dumps(info))
    with pytest.raises(WeightsError, match="config does not match"):
        load_weights(tmp_path / "ok", "toy")
    with pytest.raises(WeightsError, match=r"missing: bias.*shape mismatch: weight"):
        load_state_strict(nn.Linear(4, 2), {"weight": torch.zeros(2, 3)}, "x")


# ------------------------------------------------------------------------------------------------ checkpoint
def test_rng_capture_restore():
    seed_everything(5)
    state = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)
    restore_rng(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


class NotAllowed:
    pass


def test_checkpoint_is_weights_only(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"rng": capture_rng(), "x": torch.ones(2), "t": (1, 2.0, None)})
    state = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(state["x"], torch.ones(2)) and state["t"] == (1, 2.0, None)
    torch.save({"format": "amodal3d-checkpoint", "obj": NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "evil.pt")


# -------------------------------------------------------------------------------------------- augmentation
def _target(width: int = 40, height: int = 30) -> tuple[torch.Tensor, dict]:
    masks = torch.zeros(2, height, width, dtype=torch.uint8)
    masks[0, 5:12, 3:9] = 1
    masks[1, 10:25, 20:38] = 1
    amodal = masks.clone()
    amodal[0, 5:14, 3:15] = 1
    boxes = torch.tensor([xywh_to_xyxy(mask_to_bbox(m.bool().numpy())) for m in masks])
    amodal_boxes = torch.tensor([xywh_to_xyxy(mask_to_bbox(m.bool().numpy())) for m in amodal])
    target = {"boxes": boxes.clone(), "visible_boxes": boxes, "amodal_boxes": amodal_boxes,
              "masks": masks.clone(), "visible_masks": masks, "amodal_masks": amodal,
              "occluder_masks": torch.zeros_like(masks), "labels": torch.tensor([1, 2]),
              "viewpoint": torch.tensor([[30.0, 10.0, 2.0], [180.0, -5.0, 3.0]])}
    return torch.rand(3, height, width), target


def test_hflip_flips_boxes_masks_and_azimuth_consistently():
    image, target = _target()
    flipped_image, flipped = hflip_sample(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    for box_key, mask_key in (("visible_boxes", "visible_masks"), ("amodal_boxes", "amodal_masks")):
        for box, mask in zip(flipped[box_key], flipped[mask_key]):
            assert box.tolist() == xywh_to_xyxy(mask_to_bbox(mask.bool().numpy()))
    assert flipped["viewpoint"][:, 0].tolist() == [-30.0, 180.0]  # 180 stays in (-180, 180]
    assert torch.equal(flipped["viewpoint"][:, 1:], target["viewpoint"][:, 1:])
    again_image, again = hflip_sample(flipped_image, flipped)
    assert torch.equal(again_image, image)
    for key in target:
        assert torch.equal(again[key], target[key]), key
    assert flip_boxes(torch.tensor([[0.0, 1.0, 10.0, 2.0]]), 40).tolist() == [[30.0, 1.0, 40.0, 2.0]]
    assert mirror_azimuth(torch.tensor([-180.0, 90.0, 0.0])).tolist() == [180.0, -90.0, 0.0]


def test_augment_is_seeded_and_in_range():
    image, target = _target()
    config = AugmentConfig(hflip=0.5, color_jitter=1.0, blur=1.0, noise=1.0)
    a = augment_sample(image, target, config, torch.Generator().manual_seed(3))
    b = augment_sample(image, target, config, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["masks"], b[1]["masks"])
    assert a[0].min() >= 0 and a[0].max() <= 1 and a[0].shape == image.shape
    dataset = AugmentedDataset([(image, target)] * 3, config, seed=1)
    first = dataset[0][0]
    assert torch.equal(first, dataset[0][0])
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0][0])
    none = augment_sample(image, target, AugmentConfig(hflip=0, color_jitter=0, blur=0, noise=0),
                          torch.Generator().manual_seed(0))
    assert torch.equal(none[0], image)


# ------------------------------------------------------------------------------------------------ trainer
class ToyModel(nn.Module):
    """y = w.x + b with dropout (uses the global torch RNG, as the detector's sampling does)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.dropout = nn.Dropout(0.1)

    def forward(self, inputs, targets=None):
        pred = self.linear(self.dropout(inputs)).squeeze(-1)
        losses = {} if targets is None else {"loss_mse": ((pred - targets) ** 2).mean()}
        return pred, losses


class ToyData(torch.utils.data.Dataset):
    """y = x . (1, -2, 3, 0.5) + 1, with epoch-dependent input noise (like seeded augmentation)."""

    def __init__(self, n: int = 22):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 1
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 * self.epoch + i)
        return self.x[i] + 0.01 * torch.randn(4, generator=g), self.y[i]


def _toy_run(out: Path, stop_after: int | None = None, **changes) -> tuple[dict, Trainer]:
    config = TrainConfig(**{"epochs": 3, "batch_size": 4, "lr": 0.3, "warmup_iters": 3, "checkpoint_every": 4,
                            "log_every": 2, "clip_grad_norm": 5.0, **changes})
    seed_everything(config.seed)
    trainer = Trainer(ToyModel(), ToyData(), config, out, run_config={"model": {"toy": 1}}, progress=False)
    result = trainer.fit(stop_after=stop_after)
    return {k: v.clone() for k, v in result.model.state_dict().items()}, trainer


def test_trainer_learns_logs_and_resumes_exactly(tmp_path):
    full, trainer = _toy_run(tmp_path / "full")
    assert trainer.iteration == trainer.total_iters == 18  # 22 samples / batch 4 -> 6 per epoch, 3 epochs
    records = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert all("images_per_s" in r and "lr" in r for r in records if "loss" in r)
    assert (tmp_path / "full" / "config.yaml").is_file()
    # killed after iteration 10 (last checkpoint at 8, mid-epoch 2), then the same command again
    _, stopped = _toy_run(tmp_path / "resumed", stop_after=10)
    assert stopped.iteration == 10 and not stopped.finished
    resumed, trainer2 = _toy_run(tmp_path / "resumed")
    assert trainer2.iteration == 18
    for key in full:
        assert torch.equal(full[key], resumed[key]), key  # bitwise
    lines = (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()
    events = [json.loads(line).get("event") for line in lines]
    assert "resume" in events and events[-1] == "finished"
    # a finished run returns at once; more epochs continue it
    again, trainer3 = _toy_run(tmp_path / "resumed")
    assert trainer3.iteration == 18 and all(torch.equal(again[k], full[k]) for k in full)
    _, trainer4 = _toy_run(tmp_path / "resumed", epochs=4)
    assert trainer4.iteration == 24


def test_trainer_resume_with_workers_and_sgd_step(tmp_path):
    kwargs = {"workers": 1, "optimizer": "sgd", "schedule": "step", "epochs": 2}
    full, _ = _toy_run(tmp_path / "a", **kwargs)
    _toy_run(tmp_path / "b", stop_after=5, **kwargs)
    resumed, _ = _toy_run(tmp_path / "b", **kwargs)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    # another batch size goes on at the same sample: checkpoint at iteration 4 = 16 of 22 samples of epoch 0,
    # then 3 batches of 2 finish epoch 0 and 11 make epoch 1
    _toy_run(tmp_path / "c", stop_after=5, **kwargs)
    _, trainer = _toy_run(tmp_path / "c", **{**kwargs, "batch_size": 2})
    assert trainer.iteration == 4 + 3 + 11


def test_trainer_refuses_other_model_and_bad_loss(tmp_path):
    _toy_run(tmp_path / "run", stop_after=4)
    seed_everything(0)
    config = TrainConfig(epochs=3, batch_size=4, checkpoint_every=4)
    trainer = Trainer(ToyModel(), ToyData(), config, tmp_path / "run", run_config={"model": {"toy": 2}},
                      progress=False)
    with pytest.raises(TrainingError, match="another model config"):
        trainer.fit()

    class Exploding(ToyModel):
        def forward(self, inputs, targets=None):
            return None, {"loss_inf": self.linear(inputs).sum() * float("inf")}

    trainer = Trainer(Exploding(), ToyData(), TrainConfig(), tmp_path / "nan", progress=False)
    with pytest.raises(TrainingError, match="non-finite loss at iteration 1: loss_inf is not finite"):
        trainer.fit()


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match="expected auto, cpu"):
        resolve_device("tpu")
    assert init_distributed("cpu") == DistInfo()  # no torchrun variables: one process


# ------------------------------------------------------------------------------------------------ DDP
def test_the_ranks_share_each_epoch_between_them():
    """Each epoch, the processes' samplers deal out every sample once (22 of them: 11 a rank), shuffled anew
    each epoch; a resumed sampler skips the samples its rank has already seen."""
    orders = []
    for epoch in (0, 1):
        shares = []
        for rank in (0, 1):
            sampler = ResumableSampler(ToyData(), num_replicas=2, rank=rank, seed=0)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        assert [len(share) for share in shares] == [11, 11]
        assert sorted(shares[0] + shares[1]) == list(range(22))
        orders.append(shares[0])
        sampler.start_index = 4
        assert list(sampler) == shares[1][4:] and len(sampler) == 7
    assert orders[0] != orders[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ToyLinear(ToyModel):
    """ToyModel without dropout (the same initial weights): a batch's gradient is then a function of its
    samples alone, so two processes' averaged gradients equal those of one process on both halves."""

    def __init__(self):
        super().__init__()
        self.dropout = nn.Identity()


def _ddp_toy_worker(rank: int, world: int, port: int, out: str, model: type = ToyModel,
                    optimizer: str = "adamw") -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TORCHELASTIC_RUN_ID="test")  # as torchrun sets them
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    seed_everything(rank)  # different initial weights: DDP must broadcast rank 0's
    config = TrainConfig(epochs=2, batch_size=3, lr=0.05, checkpoint_every=100, log_every=1, optimizer=optimizer)
    trainer = Trainer(model(), ToyData(), config, out, dist_info=info, progress=False)
    assert isinstance(trainer.ddp, torch.nn.parallel.DistributedDataParallel)
    result = trainer.fit()
    save_weights(Path(out) / f"rank{rank}", result.model.state_dict(), "toy",
                 {"iterations": result.iteration})
    cleanup_distributed()


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo_train_as_one_process_on_the_doubled_batch(tmp_path):
    ddp = tmp_path / "ddp"
    # SGD: its steps scale with the gradient (AdamW's hardly do), so a sum over ranks instead of the mean shows
    torch.multiprocessing.spawn(_ddp_toy_worker, args=(2, free_port(), str(ddp), ToyLinear, "sgd"), nprocs=2,
                                join=True)
    (s0, c0), (s1, c1) = (load_weights(ddp / f"rank{r}", "toy") for r in (0, 1))
    assert c0["iterations"] == c1["iterations"] == 8  # 22 samples -> 11 per rank -> 4 batches of 3, 2 epochs
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    records = [json.loads(line) for line in (ddp / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r] == list(range(1, 9))
    assert records[0]["world_size"] == 2 and records[0]["backend"] == "gloo"
    # One process on batches of 6 (rank 0's seed, so rank 0's initial weights) sees in each step the union of
    # the two ranks' batches of 3 (the shuffled order, rank r taking every other sample) and, as DDP averages
    # the ranks' gradients, takes the same steps: equal weights up to rounding, and the same logged losses
    # (DDP logs the mean over ranks).
    seed_everything(0)
    config = TrainConfig(epochs=2, batch_size=6, lr=0.05, checkpoint_every=100, log_every=1, optimizer="sgd")
    one = Trainer(ToyLinear(), ToyData(), config, tmp_path / "one", progress=False).fit()
    assert one.iteration == 8
    for key, value in one.model.state_dict().items():
        torch.testing.assert_close(s0[key], value, rtol=0, atol=1e-6, msg=key)
    single = [json.loads(line) for line in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records if "loss" in r] == pytest.approx(
        [r["loss"] for r in single if "loss" in r], rel=1e-6)
    # ... which a run that learns at all cannot match by chance: the first steps moved the weights
    seed_everything(0)
    assert not torch.allclose(ToyLinear().linear.weight, one.model.linear.weight, atol=1e-2)


@pytest.mark.slow
def test_a_single_torchrun_process_trains_under_ddp_like_a_plain_run(tmp_path):
    """torchrun --nproc_per_node 1 joins a process group and wraps the model in DDP (the code path of one
    GPU under NCCL); with one process that must train exactly as a plain run does."""
    torch.multiprocessing.spawn(_ddp_toy_worker, args=(1, free_port(), str(tmp_path / "ddp")), nprocs=1, join=True)
    records = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert records[0]["world_size"] == 1 and records[0]["backend"] == "gloo"
    seed_everything(0)
    config = TrainConfig(epochs=2, batch_size=3, lr=0.05, checkpoint_every=100, log_every=1)
    plain = Trainer(ToyModel(), ToyData(), config, tmp_path / "plain", progress=False).fit()
    assert json.loads((tmp_path / "plain" / "log.jsonl").read_text().splitlines()[0])["backend"] is None
    ddp_state, meta = load_weights(tmp_path / "ddp" / "rank0", "toy")
    assert meta["iterations"] == plain.iteration == 16  # 22 samples -> 8 batches (the last of 1), 2 epochs
    assert all(torch.equal(ddp_state[k], v) for k, v in plain.model.state_dict().items())
