"""``amodal3d train all``: stage 1 (detector, then its crop head), then 2-4 (shape prior, optionally
fine-tuned with a second config), then 5 (refinement, with and without the prior for the ablation),
each resumable; the result is a pipeline folder."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from amodal3d.paths import check_output_dir
from amodal3d.pipeline import FILES


def _install(weights: Path, folder: Path, stem: str) -> None:
    """Copy ``X.safetensors`` + ``X.json`` into the pipeline folder as ``stem.*`` (temp + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        tmp = folder / f".{stem}{suffix}.tmp"
        shutil.copyfile(weights.with_suffix(suffix), tmp)
        tmp.replace(folder / f"{stem}{suffix}")


def train_all(data: str, out: str, detector_config: str, shape_config: str, refine_config: str,
              device: str = "auto", progress: bool = True, shape_finetune_config: str | None = None,
              crop_head_config: str | None = None) -> Path:
    """Run (or resume) every stage into ``OUT/<stage>``; returns ``OUT/pipeline``. A finished stage is
    skipped on a rerun (its run folder says it finished)."""
    from amodal3d.engine.config import load_experiment
    from amodal3d.models import crop_head, refine_train, shape_train
    from amodal3d.models import detector as det

    out_path = check_output_dir(out, inputs=[data])
    pipeline = out_path / "pipeline"
    # every config is read (and checked) before the first stage starts: a bad value in the last one is
    # reported at once, not after hours of training the first stages
    detector_experiment = det.load_experiment(detector_config)
    crop_experiment = None
    if crop_head_config is not None:  # step 1b learns on the kind of boxes the detector outputs
        box_targets = det.resolve_config(detector_experiment.model).box_targets
        crop_experiment = replace(load_experiment(crop_head.CropHeadExperiment, crop_head_config),
                                  box_targets=box_targets)
    shape_experiment = shape_train.load_experiment(shape_config, {})
    finetune_experiment = (None if shape_finetune_config is None
                           else shape_train.load_experiment(shape_finetune_config, {}))
    refine_experiments = [(stem, refine_train.load_experiment(refine_config, {"no_prior": no_prior}))
                          for stem, no_prior in ((FILES["refine"], False), (FILES["refine-no-prior"], True))]

    detector_weights = det.train_detector(detector_experiment, data, out_path / "detector",
                                          device=device, progress=progress)
    _install(detector_weights, pipeline, FILES["detector"])
    if crop_experiment is not None:
        weights = crop_head.train_crop_head(data, out_path / "crop_head", crop_experiment, device=device,
                                            progress=progress)
        _install(weights, pipeline, FILES["crop-head"])
    shape_weights = shape_train.train_shape(data, out_path / "shape", shape_experiment, device=device,
                                            progress=progress)
    if finetune_experiment is not None:
        shape_weights = shape_train.train_shape(data, out_path / "shape_finetune", finetune_experiment,
                                                device=device, progress=progress, init=shape_weights)
    _install(shape_weights, pipeline, FILES["shape"])
    for stem, experiment in refine_experiments:
        weights = refine_train.train_refine(data, out_path / stem, shape_weights, experiment, device=device,
                                            progress=progress)
        _install(weights, pipeline, stem)
    return pipeline
