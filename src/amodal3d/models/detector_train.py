"""Training the detector (:class:`~amodal3d.models.detector.AmodalDetector`): the experiment a YAML file
holds and :func:`train_detector`, resumable, under torchrun too (``amodal3d train detector``)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from amodal3d.categories import Relabel
from amodal3d.engine.augment import AugmentConfig
from amodal3d.engine.config import FieldError, to_dict
from amodal3d.engine.trainer import TrainConfig
from amodal3d.engine.weights import init_from, training_relabel
from amodal3d.errors import Amodal3dError
from amodal3d.models.detector import WEIGHTS_KIND, DetectorConfig, build_detector, save_detector
from amodal3d.models.pretrained import start_from_checkpoints
from amodal3d.paths import check_split_name


@dataclass(frozen=True)
class DetectorExperiment:
    """Everything one detector training run needs (the YAML file's structure)."""

    model: DetectorConfig = field(default_factory=DetectorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: str = "train"           # dataset split to train on
    export_dtype: str = "float32"  # dtype of the exported floating weights: float32 or float16

    def __post_init__(self) -> None:
        if self.export_dtype not in ("float32", "float16"):
            raise FieldError("export_dtype", f"must be float32 or float16, got {self.export_dtype!r}")
        try:
            check_split_name(self.split, "split")
        except Amodal3dError as error:
            raise FieldError("split", str(error).removeprefix("split: ")) from None


def train_detector(experiment: DetectorExperiment, data: str | Path, out: str | Path, device: str = "auto",
                   progress: bool = True, stop_after: int | None = None,
                   init: str | Path | None = None, relabel: Relabel | None = None,
                   init_backbone: str | Path | None = None, init_detector: str | Path | None = None) -> Path | None:
    """Train (or resume) a detector on ``data`` into ``out``; returns ``out/model.safetensors`` when the run
    is complete (on every rank), None when stopped early by ``stop_after`` (tests: simulated kill).
    ``init``: start from trained detector weights of the same architecture (fine-tuning with a fresh
    schedule); a checkpoint in ``out`` still takes precedence (resume). ``relabel``: the categories to
    train (:func:`amodal3d.engine.weights.training_relabel`; default: the dataset's own); the detector gets
    one class per category (``model.num_classes`` is set from them) and its JSON records them.
    ``init_backbone`` / ``init_detector``: start from a standard checkpoint (torchvision's ImageNet
    backbone or COCO Mask R-CNN, :mod:`amodal3d.models.pretrained`); what fitted is printed (stderr) and
    recorded in ``out/config.yaml``.

    Under torchrun the process group is joined here (gloo on CPU, NCCL on CUDA) and left by the caller
    (:func:`amodal3d.engine.distributed.cleanup_distributed`)."""
    from amodal3d.data.dataset import collate
    from amodal3d.engine.augment import AugmentedDataset
    from amodal3d.engine.checkpoint import seed_everything
    from amodal3d.engine.distributed import barrier, init_distributed
    from amodal3d.engine.trainer import Trainer, check_training_split

    dataset = check_training_split(data, experiment.split)
    # the model's classes are the dataset's categories (or those of ``relabel``): labels 1..N + background
    dataset = dataset.relabelled(training_relabel(dataset, init, relabel))
    experiment = dataclasses.replace(experiment, model=dataclasses.replace(
        experiment.model, num_classes=len(dataset.taxonomy) + 1))
    info = init_distributed(device)
    seed_everything(experiment.train.seed)
    model = build_detector(experiment.model)
    if init is not None:
        init_from(model, init, WEIGHTS_KIND)
    reports = start_from_checkpoints(model, init_backbone, init_detector, dataset.taxonomy.names)
    for report in reports if info.is_main else ():
        print("\n".join(report.lines()), file=sys.stderr)
    train_set = AugmentedDataset(dataset, experiment.augment, seed=experiment.train.seed)
    run_config = {**to_dict(dataclasses.replace(experiment, model=model.config)),
                  "init": None if init is None else str(init),
                  **{f"init_{r.kind}": r.to_dict() for r in reports}}
    trainer = Trainer(model, train_set, experiment.train, out, dist_info=info, collate_fn=collate,
                      run_config=run_config, progress=progress, desc=f"detector {model.config.heads}")
    result = trainer.fit(stop_after=stop_after)
    if not result.finished:
        return None
    path = Path(out) / "model.safetensors"
    if info.is_main:
        dtype = torch.float16 if experiment.export_dtype == "float16" else None
        save_detector(result.model, path, dtype=dtype, extra={"iterations": result.iteration},
                      taxonomy=dataset.taxonomy)
    barrier(info)
    return path


__all__ = ["DetectorExperiment", "train_detector"]
