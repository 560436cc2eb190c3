"""Training and loading of the refinement stage (step 5), on priors rendered by a trained shape model."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amodal3d.categories import Relabel
from amodal3d.data.instances import InstanceRois
from amodal3d.engine.checkpoint import seed_everything
from amodal3d.engine.config import to_dict
from amodal3d.engine.distributed import cleanup_distributed, init_distributed
from amodal3d.engine.trainer import TrainConfig, Trainer, check_training_split
from amodal3d.engine.weights import config_digest, init_from, record_taxonomy
from amodal3d.io import atomic_write_bytes
from amodal3d.models.refine import WEIGHTS_KIND, RefineConfig, RefineNet, refine_inputs
from amodal3d.models.shape import ShapePrior, load_shape_prior, with_fit
from amodal3d.models.shape_train import collate_rois


@dataclass(frozen=True)
class RefineExperiment:
    model: RefineConfig = field(default_factory=RefineConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, batch_size=32, lr=2e-3,
                                                                   warmup_iters=50, clip_grad_norm=5.0,
                                                                   checkpoint_every=200))


@torch.no_grad()
def render_priors(shape: ShapePrior, rois: InstanceRois, fit_steps: int = 0, batch_size: int = 64,
                  progress: bool = True) -> np.ndarray:
    """Soft priors (N, S, S) uint8 (x 255) of every cached ROI, rendered by ``shape`` (its camera
    fitted to the visible mask with ``fit_steps`` steps of :func:`~amodal3d.models.shape.fit_to_visible`)."""
    out = []
    for start in tqdm(range(0, len(rois), batch_size), desc="priors", unit="batch", disable=not progress):
        inputs, _ = collate_rois([rois[i] for i in range(start, min(start + batch_size, len(rois)))])
        output, _ = shape(inputs)
        prior = with_fit(shape, output, inputs["roi"], fit_steps).prior
        out.append((prior * 255).round().to(torch.uint8).numpy())
    return np.concatenate(out) if out else np.zeros((0, shape.config.roi_size, shape.config.roi_size), np.uint8)


def _cache_key(weights: str | Path, **settings) -> str:
    """12 hex digits naming what a cache was computed with: a weights file (path and time) + settings."""
    path = Path(weights)
    return config_digest({"weights": path.resolve().as_posix(), "mtime": path.stat().st_mtime_ns, **settings})[:12]


class PriorRois(torch.utils.data.Dataset):
    """Cached ROIs plus the shape model's priors (cached per shape-weights digest).
    ``dataset[i] -> ({"x": (7, S, S)}, {"amodal": (S, S)})``."""

    def __init__(self, data: str | Path, split: str, shape_weights: str | Path, fit_steps: int = 0,
                 progress: bool = True, limit_images: int | None = None, cache_dir: str | Path | None = None,
                 relabel: Relabel | None = None):
        shape = load_shape_prior(shape_weights)
        self.rois = InstanceRois(data, split, shape.config.roi_size, shape.config.roi_enlarge, progress,
                                 limit_images, cache_dir, relabel=relabel)
        path = None  # cached beside the ROIs, when they are
        if self.rois.path is not None:
            key = _cache_key(shape_weights, fit_steps=fit_steps)
            path = self.rois.path.with_name(f"{self.rois.path.stem}_priors_{key}.npy")
        if path is not None and path.is_file():
            self.priors = np.load(path)
        else:
            self.priors = render_priors(shape, self.rois, fit_steps, progress=progress)
            if path is not None:
                buffer = io.BytesIO()
                np.save(buffer, self.priors)
                atomic_write_bytes(path, buffer.getvalue())

    def __len__(self) -> int:
        return len(self.rois)

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        inputs, targets = self.rois[index]
        prior = torch.from_numpy(self.priors[index].astype(np.float32) / 255.0)
        return {"x": refine_inputs(inputs["roi"][None], prior[None])[0]}, targets


def collate_refine(batch: list) -> tuple[dict, dict]:
    inputs, targets = zip(*batch)
    return {"x": torch.stack([i["x"] for i in inputs])}, {"amodal": torch.stack([t["amodal"] for t in targets])}


def train_refine(data: str | Path, out: str | Path, shape_weights: str | Path, experiment: RefineExperiment,
                 split: str = "train", device: str = "auto", limit_images: int | None = None,
                 progress: bool = True, init: str | Path | None = None, relabel: Relabel | None = None) -> Path:
    """Train (or resume) the refinement net on the priors of ``shape_weights``; writes
    ``OUT/model.safetensors`` + ``model.json``. Returns the weights path.
    ``init``: start from a trained refinement net of the same configuration (fine-tuning); a checkpoint
    in ``out`` takes precedence."""
    check_training_split(data, split, limit_images)  # before the priors are rendered or a process group joined
    if init is not None:  # the weights fit this config: checked before the (long) prior rendering too
        init_from(RefineNet(experiment.model), init, WEIGHTS_KIND)
    info = init_distributed(device)
    try:
        dataset = PriorRois(data, split, shape_weights, experiment.model.prior_fit_steps, progress and info.is_main,
                            limit_images, Path(out) / "cache", relabel=relabel)  # the shape model's labels
        seed_everything(experiment.train.seed)
        model = RefineNet(experiment.model)
        if init is not None:
            init_from(model, init, WEIGHTS_KIND)
        run_config = {"model": to_dict(experiment.model), "train": to_dict(experiment.train), "data": str(data),
                      "shape_weights": str(shape_weights),
                      "init": None if init is None else str(init)}
        trainer = Trainer(model, dataset, experiment.train, out, dist_info=info, collate_fn=collate_refine,
                          run_config=run_config, progress=progress, desc="refine")
        path = trainer.fit_and_export(WEIGHTS_KIND, to_dict(experiment.model))
        if info.is_main and relabel is not None:  # class-agnostic itself: its pipeline's categories, recorded
            record_taxonomy(path, relabel.taxonomy)
        return path
    finally:
        cleanup_distributed()


def without_prior(experiment: RefineExperiment) -> RefineExperiment:
    """The ablation ``a3d-no-prior`` of ``experiment`` (``train refine --no-prior``): the same network with
    the prior channel zeroed (and no camera fit for a prior it does not see)."""
    return dataclasses.replace(experiment, model=dataclasses.replace(experiment.model, use_prior=False,
                                                                    prior_fit_steps=0))
