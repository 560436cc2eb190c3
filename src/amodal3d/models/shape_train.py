"""Training, loading and figures of the shape prior (steps 2-4)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import trimesh

from amodal3d.categories import Relabel
from amodal3d.data.instances import InstanceRois
from amodal3d.engine.checkpoint import seed_everything
from amodal3d.engine.config import load_experiment, to_dict
from amodal3d.engine.distributed import cleanup_distributed, init_distributed
from amodal3d.engine.trainer import TrainConfig, Trainer, check_training_split
from amodal3d.engine.weights import init_from, record_taxonomy, training_relabel
from amodal3d.models.shape import WEIGHTS_KIND, ShapeConfig, ShapePrior, load_shape_prior


@dataclass(frozen=True)
class ShapeExperiment:
    """``configs/shape_*.yaml``: a ``model`` and a ``train`` section."""

    model: ShapeConfig = field(default_factory=ShapeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4, batch_size=32, lr=1e-3,
                                                                   warmup_iters=100, clip_grad_norm=5.0,
                                                                   checkpoint_every=200))


def collate_rois(batch: list) -> tuple[dict, dict]:
    inputs, targets = zip(*batch)
    return ({"roi": torch.stack([i["roi"] for i in inputs]), "labels": torch.stack([i["labels"] for i in inputs])},
            {"amodal": torch.stack([t["amodal"] for t in targets])})


def train_shape(data: str | Path, out: str | Path, experiment: ShapeExperiment, split: str = "train",
                device: str = "auto", limit_images: int | None = None, progress: bool = True,
                init: str | Path | None = None, relabel: Relabel | None = None) -> Path:
    """Train (or resume) the shape prior; writes ``OUT/model.safetensors`` + ``model.json``,
    ``OUT/log.jsonl`` and ``OUT/reconstructions.png``. Returns the weights path.

    ``init``: start from a trained shape model of the same architecture (fine-tuning, e.g. with a
    smaller ``sigma``); a checkpoint in ``out`` still takes precedence (resume). ``relabel``: the
    categories, one template each (default: the dataset's own; ``num_categories`` is set from them and
    the JSON records them)."""
    # before the ROIs are computed or a process group joined
    source = check_training_split(data, split, limit_images)
    relabel = training_relabel(source, init, relabel)
    cfg = replace(experiment.model, num_categories=len(relabel.taxonomy))
    experiment = replace(experiment, model=cfg)
    if init is not None:  # the weights fit this config: checked before the (long) ROI computation too
        init_from(ShapePrior(cfg), init, WEIGHTS_KIND)
    info = init_distributed(device)
    try:
        dataset = InstanceRois(data, split, cfg.roi_size, cfg.roi_enlarge, progress=progress and info.is_main,
                               limit_images=limit_images, cache_dir=Path(out) / "cache", relabel=relabel)
        seed_everything(experiment.train.seed)
        model = ShapePrior(cfg)
        if init is not None:
            init_from(model, init, WEIGHTS_KIND)
        run_config = {"model": to_dict(cfg), "train": to_dict(experiment.train), "data": str(data), "split": split,
                      "init": None if init is None else str(init)}
        trainer = Trainer(model, dataset, experiment.train, out, dist_info=info, collate_fn=collate_rois,
                          run_config=run_config, progress=progress, desc="shape")
        path = trainer.fit_and_export(WEIGHTS_KIND, to_dict(cfg))
        if info.is_main:
            record_taxonomy(path, relabel.taxonomy)
            reconstruction_figure(trainer.model.eval(), dataset, path.with_name("reconstructions.png"))
        return path
    finally:
        cleanup_distributed()


def train_shape_from_args(args, relabel: Relabel | None = None) -> Path:
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "max_iters": args.max_iters,
                 "seed": args.seed}
    experiment = load_experiment(ShapeExperiment, args.config, overrides, init_given=args.init is not None)
    path = train_shape(args.data, args.out, experiment, args.split, args.device, args.limit_images,
                       progress=not args.quiet, init=args.init, relabel=relabel)
    print(path)
    return path


def mesh_of(output, index: int) -> trimesh.Trimesh:
    """The reconstructed mesh of instance ``index`` of a :class:`ShapeOutput` (object frame)."""
    return trimesh.Trimesh(output.verts[index].detach().cpu().numpy(), output.faces.cpu().numpy(), process=False)


MESH_FORMATS = ("obj", "glb", "ply", "stl")


def export_instance_mesh(weights: str, data: str, split: str, instance: int, out: str) -> Path:
    from amodal3d.data.dataset import AmodalDataset
    from amodal3d.engine.weights import weight_paths
    from amodal3d.errors import Amodal3dError, DataError
    from amodal3d.io import atomic_write_bytes
    from amodal3d.paths import check_output_file

    suffix = Path(out).suffix.lstrip(".").lower() or "obj"
    if suffix not in MESH_FORMATS:
        raise Amodal3dError(f"--out: {out}: unknown mesh format {suffix!r} (use .{', .'.join(MESH_FORMATS)})")
    check_output_file(out, inputs=[weights, *weight_paths(weights)])
    model = load_shape_prior(weights)
    source = AmodalDataset(data, split)
    if not source.data["annotations"]:
        raise DataError(f"{source.annotation_file}: split {split!r} has no instances; nothing to export")
    dataset = InstanceRois(data, split, model.config.roi_size, model.config.roi_enlarge)
    if not 0 <= instance < len(dataset):
        raise DataError(f"{data}: split {split} has {len(dataset)} instances; --instance {instance} is out of range")
    inputs, _ = collate_rois([dataset[instance]])
    with torch.no_grad():
        output, _ = model(inputs)
    blob = mesh_of(output, 0).export(file_type=suffix)
    return atomic_write_bytes(out, blob if isinstance(blob, bytes) else blob.encode())


@torch.no_grad()
def reconstruction_figure(model: ShapePrior, dataset: InstanceRois, out: str | Path, count: int = 8) -> Path:
    """Rows: input ROI, visible mask, mesh from the predicted view and from the side, rendered prior,
    ground-truth amodal mask (shown, never used for training)."""
    from PIL import Image

    from amodal3d.data.preview import shaded_view
    from amodal3d.visualize import grid

    rng = np.random.default_rng(0)
    occluded = np.flatnonzero(dataset.arrays["occlude_rate"] >= 0.25)
    pool = occluded if len(occluded) >= count else np.arange(len(dataset))
    picks = rng.choice(pool, size=min(count, len(pool)), replace=False)
    inputs, targets = collate_rois([dataset[int(i)] for i in picks])
    output, _ = model(inputs)

    def tile(array: np.ndarray) -> Image.Image:
        return Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).convert("RGB").resize((96, 96))

    tiles, captions = [], []
    for k in range(len(picks)):
        roi = inputs["roi"][k]
        mesh = mesh_of(output, k)
        az, el = float(output.cameras.azimuth[k]), float(output.cameras.elevation[k])
        tiles += [tile(roi[:3].permute(1, 2, 0).numpy()),
                  tile((roi[3] + 0.4 * roi[4]).numpy()),
                  Image.fromarray(shaded_view(mesh, azimuth=az, elevation=el, size=96)),
                  Image.fromarray(shaded_view(mesh, azimuth=az + 90, elevation=15, size=96)),
                  tile(output.prior[k].numpy()),
                  tile(targets["amodal"][k].numpy())]
        captions += ["input ROI", "visible+occluder", f"mesh az {az:.0f}", "mesh +90", "prior", "gt amodal"]
    grid(tiles, 6, out, captions)
    return Path(out)
