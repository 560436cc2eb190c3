"""A generic training loop for the stage modules (detector, shape model, refinement).

The model follows the project convention ``model(inputs, targets) -> (output, losses)`` with ``losses``
a dict of scalar ``loss_*`` tensors, summed for the gradient. A batch from the data loader is
``(inputs, targets)``; tensors inside (also in lists, tuples and dicts) are moved to the device.

A run lives in a folder ``RUN``: ``config.yaml`` (the experiment config), ``log.jsonl`` (one JSON object
per logged iteration), ``checkpoint.pt`` (the latest resumable state). Running again with the same
folder resumes from the checkpoint; a finished run returns at once.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from amodal3d.engine.checkpoint import (
    SEED_MAX,
    CheckpointError,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from amodal3d.engine.config import check_range, save_config
from amodal3d.engine.distributed import DistInfo, all_gather_objects, mean_over_ranks
from amodal3d.engine.weights import first_non_finite, save_weights
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.io import remove_temporaries


class TrainingError(Amodal3dError):
    """Training cannot go on (non-finite loss, empty dataset, a checkpoint of another run...)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every stage. ``batch_size`` is per process."""

    epochs: int = 1
    batch_size: int = 4
    workers: int = 0
    seed: int = 0
    max_iters: int | None = None          # stop after this many iterations (the schedule spans them)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9                  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only
    decay_norm_and_bias: bool = False      # apply weight decay to norm weights and biases too
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_iters: int = 0
    warmup_factor: float = 0.001           # lr multiplier at iteration 0, rising linearly to 1
    milestones: tuple[float, ...] = (0.75, 0.9)  # step schedule: fractions of the total iterations
    gamma: float = 0.1                     # step schedule: factor at each milestone
    min_lr_ratio: float = 0.0              # cosine schedule: final lr / lr
    clip_grad_norm: float | None = None
    checkpoint_every: int = 500            # iterations (and always at each epoch end)
    log_every: int = 20
    drop_last: bool = False
    deterministic: bool = False            # torch.use_deterministic_algorithms (warn only)
    amp: bool = False                      # bfloat16 autocast on CUDA
    find_unused_parameters: bool = False   # DDP option

    def __post_init__(self) -> None:
        """Every number finite and in its range (a FieldError naming the key: see engine.config)."""
        for name in ("epochs", "batch_size", "checkpoint_every", "log_every", "max_iters"):
            check_range(self, name, 1)
        for name in ("workers", "warmup_iters", "weight_decay"):
            check_range(self, name, 0)
        check_range(self, "seed", 0, SEED_MAX)
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "momentum", 0, 1, high_open=True)
        check_range(self, "betas", 0, 1, high_open=True)
        check_range(self, "warmup_factor", 0, 1, low_open=True)
        check_range(self, "milestones", 0, 1)
        check_range(self, "gamma", 0, low_open=True)
        check_range(self, "min_lr_ratio", 0, 1)
        check_range(self, "clip_grad_norm", 0, low_open=True)
        for name, high in (("epochs", 10**6), ("batch_size", 4096), ("checkpoint_every", 10**9), ("log_every", 10**9),
                           ("max_iters", 10**9), ("workers", 64), ("warmup_iters", 10**9), ("weight_decay", 10),
                           ("lr", 10), ("gamma", 100), ("clip_grad_norm", 10**6)):  # sane upper bounds
            check_range(self, name, high=high)


def check_training_split(data: str | Path, split: str, limit_images: int | None = None):
    """The :class:`~amodal3d.data.dataset.AmodalDataset` of ``split``, checked before any training starts:
    DataError naming its annotation file when it has no image or no annotated object (in its first
    ``limit_images`` images); ``limit_images`` is None or >= 1."""
    from amodal3d.data.dataset import AmodalDataset

    if limit_images is not None and (isinstance(limit_images, bool) or not isinstance(limit_images, int)
                                     or limit_images < 1):
        raise Amodal3dError(f"--limit-images: expected a whole number >= 1, got {limit_images!r}")
    dataset = AmodalDataset(data, split)
    images = dataset.images if limit_images is None else dataset.images[:limit_images]
    where = f"split {split!r}" if limit_images is None else f"the first {limit_images} image(s) of split {split!r}"
    if not images:
        raise DataError(f"{dataset.annotation_file}: {where} has no images; nothing to train on")
    if not any(dataset.by_image.get(image.get("id")) for image in images):
        raise DataError(f"{dataset.annotation_file}: {where} has no annotated objects "
                        f"({len(images)} image(s), 0 annotations); nothing to train on")
    return dataset


# optimiser settings that a checkpoint's optimiser state brings back on resume (they cannot change then)
RESUME_FIXED = ("optimizer", "lr", "weight_decay", "momentum", "betas", "decay_norm_and_bias")


def lr_factor(iteration: int, total: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at ``iteration`` (0-based) of ``total``: linear warm-up from
    ``warmup_factor`` over ``warmup_iters``, times the cosine / step / constant schedule."""
    warm = 1.0
    if iteration < config.warmup_iters:
        alpha = iteration / config.warmup_iters
        warm = config.warmup_factor * (1 - alpha) + alpha
    progress = min(iteration / max(total, 1), 1.0)
    if config.schedule == "cosine":
        decay = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    elif config.schedule == "step":
        decay = config.gamma ** sum(progress >= m for m in config.milestones)
    else:
        decay = 1.0
    return warm * decay


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over the trainable parameters; 1-d parameters (norms, biases) get no weight decay
    unless ``decay_norm_and_bias``."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 and not config.decay_norm_and_bias else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffled by ``seed + epoch``, this rank's share) that can start inside an
    epoch: ``start_index`` samples of this rank are skipped."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=drop_last)
        self.start_index = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.start_index:])

    def __len__(self) -> int:
        return max(self.num_samples - self.start_index, 0)


def move_to(obj: Any, device: torch.device) -> Any:
    """Tensors inside (nested lists, tuples, dicts) moved to ``device``; other values unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj


@dataclass(frozen=True)
class TrainResult:
    model: torch.nn.Module   # the trained model (unwrapped from DDP), on the training device
    iteration: int           # iterations done in total
    finished: bool           # False when stopped early by ``stop_after``
    out: Path


class Trainer:
    """Runs (or resumes) one training run in ``out``.

    ``model`` must be built after :func:`~amodal3d.engine.checkpoint.seed_everything` for a reproducible
    initialisation; under DDP the initial weights of rank 0 are broadcast. ``dataset`` items are
    ``(input, target)`` pairs batched by ``collate_fn``; when it has ``set_epoch`` it is called at each
    epoch (seeded augmentation). ``run_config`` (a dict) is written to ``RUN/config.yaml``-style logs
    and compared on resume: a different ``model`` section is refused.
    """

    def __init__(self, model: torch.nn.Module, dataset, config: TrainConfig, out: str | Path,
                 dist_info: DistInfo | None = None, collate_fn: Callable | None = None,
                 run_config: dict | None = None, progress: bool = True, desc: str = "train"):
        self.config = config
        self.out = Path(out)
        self.info = dist_info or DistInfo()
        self.device = self.info.device
        self.model = model.to(self.device)
        self.dataset = dataset
        self.run_config = run_config or {}
        self.progress = progress
        self.desc = desc
        if len(dataset) == 0:
            raise TrainingError(f"{desc}: the training set is empty")
        self.sampler = ResumableSampler(dataset, self.info.world_size, self.info.rank, config.seed,
                                        drop_last=config.drop_last)
        self.loader = DataLoader(dataset, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.workers, collate_fn=collate_fn,
                                 drop_last=config.drop_last,
                                 generator=torch.Generator().manual_seed(config.seed),
                                 pin_memory=self.device.type == "cuda", persistent_workers=False)
        per_rank = self.sampler.num_samples
        self.iters_per_epoch = (per_rank // config.batch_size if config.drop_last
                                else -(-per_rank // config.batch_size))
        if self.iters_per_epoch == 0:
            raise TrainingError(f"{desc}: {per_rank} samples per process < batch size {config.batch_size} "
                                "with drop_last")
        self.total_iters = config.epochs * self.iters_per_epoch
        if config.max_iters is not None:
            self.total_iters = min(self.total_iters, config.max_iters)
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_factor(it, self.total_iters, config))
        self.ddp: torch.nn.Module = self.model
        if self.info.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.find_unused_parameters)
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.checkpoint_path = self.out / "checkpoint.pt"
        self.log_path = self.out / "log.jsonl"
        self.epoch = 0
        self.epoch_samples = 0  # samples of the current epoch consumed by all ranks together
        self.iteration = 0
        self.finished = False
        self.last_lr = config.lr

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        rng = all_gather_objects(capture_rng(), self.info)
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                "epoch_samples": self.epoch_samples, "iteration": self.iteration,
                "total_iters": self.total_iters, "world_size": self.info.world_size, "rng": rng,
                "finished": self.finished, "run_config": json.dumps(self.run_config, sort_keys=True)}

    def save(self) -> None:
        state = self.state()  # every rank takes part (RNG gathering)
        if self.info.is_main:
            save_checkpoint(self.checkpoint_path, state)

    def resume(self) -> bool:
        """Load ``RUN/checkpoint.pt`` when it exists; returns whether it did. Refused (one line naming the
        checkpoint): another model config, optimiser settings that the checkpoint would silently replace
        (see :data:`RESUME_FIXED`), a checkpoint that does not fit the model or holds NaN/inf weights."""
        if not self.checkpoint_path.is_file():
            return False
        state = load_checkpoint(self.checkpoint_path)
        try:
            old = json.loads(state.get("run_config") or "{}")
        except (TypeError, ValueError):
            raise CheckpointError(f"{self.checkpoint_path}: unreadable run config in the checkpoint") from None
        if old.get("model") != self.run_config.get("model"):
            raise TrainingError(f"{self.checkpoint_path}: the run in {self.out} was started with another "
                                "model config; use a new --out folder (or the original config)")
        try:
            done = bool(state["finished"]) and int(state["iteration"]) >= self.total_iters
            if not done:  # training goes on: with the optimiser settings it started with
                self._check_same_optimizer(old.get("train"))
            self._load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            detail = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
            raise CheckpointError(f"{self.checkpoint_path}: the checkpoint does not fit this run ({detail}); "
                                  "use a new --out folder") from None
        return True

    def _load_state(self, state: dict) -> None:
        bad = first_non_finite(state["model"].items())
        if bad is not None:
            raise CheckpointError(f"{self.checkpoint_path}: tensor {bad!r} holds NaN/inf values; the checkpoint "
                                  "is not usable, use a new --out folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # the position is counted in samples, so a resume with another batch size or number of processes
        # goes on where the run stopped (exactly reproducible only with the same settings)
        self.epoch = int(state["epoch"])
        if "epoch_samples" in state:
            self.epoch_samples = int(state["epoch_samples"])
        else:  # checkpoints written before the position was counted in samples
            batches = int(state["batch_in_epoch"])
            self.epoch_samples = batches * self.config.batch_size * int(state["world_size"])
        self.iteration, self.finished = int(state["iteration"]), bool(state["finished"])
        if self.iteration < self.total_iters:
            self.finished = False  # more epochs or iterations were asked for
        rng = state["rng"]
        restore_rng(rng[self.info.rank] if self.info.rank < len(rng) else rng[0])

    def _check_same_optimizer(self, old_train: dict | None) -> None:
        """The optimiser state of the checkpoint brings its own learning rate, weight decay, momentum and
        betas: a resume asking for other values would silently train with the old ones, so it is refused."""
        new_train = self.run_config.get("train")
        if not isinstance(old_train, dict) or not isinstance(new_train, dict):
            return
        changed = [k for k in RESUME_FIXED if k in old_train and k in new_train and old_train[k] != new_train[k]]
        if changed:
            key = changed[0]
            raise TrainingError(f"{self.checkpoint_path}: the run in {self.out} was started with train.{key} "
                                f"{old_train[key]!r}, this config asks for {new_train[key]!r} (a resume keeps "
                                "the checkpoint's optimiser settings); use a new --out folder, with --init "
                                f"{self.out / 'model.safetensors'} to fine-tune a finished run")

    def log(self, record: dict) -> None:
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    # ---------------------------------------------------------------- loop
    def step(self, batch) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch; returns the detached losses (and ``grad_norm``).

        A non-finite loss, gradient or updated parameter raises :class:`TrainingError` (naming the
        iteration and the loss term or parameter) before anything is saved: the last checkpoint stays
        the last good state and no weights are exported."""
        inputs, targets = move_to(batch, self.device)
        self.ddp.train()
        use_amp = self.config.amp and self.device.type == "cuda"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            _, losses = self.ddp(inputs, targets)
        if not losses:
            raise TrainingError(f"{self.desc}: the model returned no losses")
        total = sum(losses.values())
        finite = torch.isfinite(total.detach()).reshape(-1).all().float()
        # every process learns whether one of them diverged (else the others would wait in backward)
        if float(mean_over_ranks(finite, self.info)) < 1.0:
            values = {k: float(v.detach().float().mean()) for k, v in losses.items()}
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            terms = ", ".join(f"{k}={values[k]}" for k in [*bad, *(k for k in values if k not in bad)])
            if bad:
                what = f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not finite"
            else:
                what = "the sum of the losses overflows" if not bool(finite) else \
                    "the loss is not finite on another process"
            self._diverged(f"non-finite loss at iteration {self.iteration + 1}: {what} ({terms})")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.config.clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.clip_grad_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])) if params \
                else torch.zeros(())
        if not torch.isfinite(norm):  # gradients are averaged over processes: every process sees it
            name = first_non_finite((n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None)
            where = f"the gradient of {name}" if name else "the gradient norm"
            self._diverged(f"non-finite gradient at iteration {self.iteration + 1}: {where} is not finite "
                           f"(loss {float(total.detach()):.6g})")
        self.last_lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        weights = [p.detach() for p in params if p.numel()]  # one fused max-abs per tensor, one sync
        if weights and not torch.isfinite(torch.stack(torch._foreach_norm(weights, math.inf))).all():
            name = first_non_finite((n, p) for n, p in self.model.named_parameters() if p.grad is not None)
            self._diverged(f"non-finite weights after the update of iteration {self.iteration + 1}: {name} "
                           f"is not finite (loss {float(total.detach()):.6g}, lr {self.last_lr:g})")
        out = {k: v.detach() for k, v in losses.items()}
        out["loss"] = total.detach()
        out["grad_norm"] = norm.detach()
        return out

    def _diverged(self, what: str) -> None:
        """Stop: log the event and raise TrainingError (nothing is saved or exported)."""
        kept = (f"{self.checkpoint_path} (the last good state) is kept" if self.checkpoint_path.is_file()
                else "no checkpoint was written")
        message = (f"{self.desc}: {what}; training stopped without exporting weights, {kept}; lower "
                   "train.lr or set train.clip_grad_norm (in a new --out folder)")
        self.log({"event": "diverged", "iteration": self.iteration + 1, "error": message, "time": time.time()})
        raise TrainingError(message)

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train until ``total_iters`` (resuming first when a checkpoint exists). ``stop_after`` ends the
        process's work after that global iteration without saving (simulates a kill; for tests)."""
        if self.info.is_main:  # the run folder has one writer: temporaries there are left by a killed run
            remove_temporaries(self.out)
        resumed = self.resume()
        if self.finished:
            return TrainResult(self.model, self.iteration, True, self.out)
        if self.info.is_main and self.run_config:
            save_config(self.out / "config.yaml", self.run_config)
        self.log({"event": "resume" if resumed else "start", "iteration": self.iteration,
                  "total_iters": self.total_iters, "world_size": self.info.world_size,
                  "backend": self.info.backend, "device": str(self.device), "time": time.time()})
        bar = tqdm(total=self.total_iters, initial=self.iteration, desc=self.desc, unit="it",
                   dynamic_ncols=True, disable=not (self.progress and self.info.is_main))
        window_start, window_images = time.perf_counter(), 0
        try:
            while self.epoch < self.config.epochs and self.iteration < self.total_iters:
                self.sampler.set_epoch(self.epoch)
                self.sampler.start_index = self.epoch_samples // self.info.world_size
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(self.epoch)
                # the position is counted in dataset items (images), which a collate function may turn
                # into any number of samples (crops): each batch holds batch_size items of the sampler's,
                # the last one the rest
                given = 0
                for batch in self.loader:
                    if self.iteration >= self.total_iters:
                        break
                    losses = self.step(batch)
                    self.iteration += 1
                    items = min(self.config.batch_size, len(self.sampler) - given)
                    given += items
                    images = items * self.info.world_size
                    self.epoch_samples += images
                    window_images += images
                    if self.iteration % self.config.log_every == 0 or self.iteration == self.total_iters:
                        names = sorted(losses)
                        values = mean_over_ranks(torch.stack([losses[k].float() for k in names]), self.info)
                        elapsed = time.perf_counter() - window_start
                        record = {"iteration": self.iteration, "epoch": self.epoch,
                                  "lr": self.last_lr,
                                  **{k: round(float(v), 6) for k, v in zip(names, values)},
                                  "images_per_s": round(window_images / max(elapsed, 1e-9), 3),
                                  "time": time.time()}
                        self.log(record)
                        bar.set_postfix(loss=f"{record['loss']:.3f}", img_s=f"{record['images_per_s']:.1f}")
                        window_start, window_images = time.perf_counter(), 0
                    bar.update(1)
                    if self.iteration % self.config.checkpoint_every == 0:
                        self.save()
                    if stop_after is not None and self.iteration >= stop_after:
                        return TrainResult(self.model, self.iteration, False, self.out)
                else:
                    self.epoch += 1
                    self.epoch_samples = 0
                    self.log({"event": "epoch_end", "epoch": self.epoch, "iteration": self.iteration,
                              "time": time.time()})
                    self.save()
                    continue
                break  # total_iters reached inside an epoch
            self.finished = True
            self.save()
            self.log({"event": "finished", "iteration": self.iteration, "time": time.time()})
        finally:
            bar.close()
        return TrainResult(self.model, self.iteration, True, self.out)

    def fit_and_export(self, kind: str, config: dict) -> Path:
        """:meth:`fit`, then (main rank) ``RUN/model.safetensors`` + ``RUN/model.json``: the weights, of
        ``kind``, with the model's ``config``. Returns the weights path."""
        result = self.fit()
        path = self.out / "model"
        if self.info.is_main:
            save_weights(path, result.model.cpu().state_dict(), kind, config)
        return path.with_suffix(".safetensors")
