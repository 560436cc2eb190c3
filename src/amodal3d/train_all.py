"""``amodal3d train all``: stage 1 (detector, then its crop head), then 2-4 (shape prior), then 5
(refinement, with and without the prior for the ablation), each resumable; the result is a pipeline folder.

Each stage's config is the last round of a chain of fine-tune rounds (configs whose ``init`` field names
the config they continue, :mod:`amodal3d.configs`); every round of the chain is trained in order, each from
the previous one's weights. The defaults are the installed configs that rebuilt the shipped model
(:data:`amodal3d.configs.SHIPPED`), so ``amodal3d train all --data D --out R`` runs from any folder."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from amodal3d.configs import CONFIG_DIR, SHIPPED, rounds
from amodal3d.paths import check_output_dir
from amodal3d.pipeline import FILES

DEFAULT_CONFIGS = {stage: str(CONFIG_DIR / name) for stage, name in SHIPPED.items()}
"""Stage -> the installed config ``train all`` uses when none is given."""


def _install(weights: Path, folder: Path, stem: str) -> None:
    """Copy ``X.safetensors`` + ``X.json`` into the pipeline folder as ``stem.*`` (temp + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        tmp = folder / f".{stem}{suffix}.tmp"
        shutil.copyfile(weights.with_suffix(suffix), tmp)
        tmp.replace(folder / f"{stem}{suffix}")


def round_folder(out: Path, stem: str, index: int) -> Path:
    """The run folder of round ``index`` (0 first) of a stage: ``OUT/stem``, ``OUT/stem_finetune``,
    ``OUT/stem_finetune2``..."""
    return out / (stem if index == 0 else f"{stem}_finetune" + (str(index) if index > 1 else ""))


def load_rounds(config: str | Path, load: Callable[[dict, str], object]) -> tuple[list, Path | None]:
    """([experiment of each round, first first], the weights the first round starts from or None): the chain
    of rounds that ends at ``config`` (a path or the name of an installed config), each read by
    ``load(sections, source)``."""
    chain, init = rounds(config)
    return [load(data, str(path)) for path, data in chain], init


def train_all(data: str, out: str, detector_config: str = DEFAULT_CONFIGS["detector"],
              shape_config: str = DEFAULT_CONFIGS["shape"], refine_config: str = DEFAULT_CONFIGS["refine"],
              device: str = "auto", progress: bool = True, shape_finetune_config: str | None = None,
              crop_head_config: str | None = DEFAULT_CONFIGS["crop_head"]) -> Path:
    """Run (or resume) every round of every stage into ``OUT/<stage>[_finetune[N]]``; returns
    ``OUT/pipeline``. A finished round is skipped on a rerun (its run folder says it finished).

    ``*_config``: a YAML path or an installed config's name (:func:`amodal3d.configs.config_path`); the
    crop head's None skips it. ``shape_finetune_config``: one more shape round after the shape chain."""
    from amodal3d.engine.config import from_dict
    from amodal3d.models import crop_head, detector_train, refine_train, shape_train
    from amodal3d.models import detector as det

    out_path = check_output_dir(out, inputs=[data])
    pipeline = out_path / "pipeline"
    # every config is read (and checked) before the first stage starts: a bad value in the last one is
    # reported at once, not after hours of training the first stages
    detectors, detector_init = load_rounds(
        detector_config, lambda d, source: from_dict(detector_train.DetectorExperiment, d, source=source))
    crops, crop_init = [], None
    if crop_head_config is not None:  # step 1b learns on the kind of boxes the detector outputs
        box_targets = det.resolve_config(detectors[-1].model).box_targets
        crops, crop_init = load_rounds(crop_head_config, lambda d, source: dataclasses.replace(
            from_dict(crop_head.CropHeadExperiment, d, source=source), box_targets=box_targets))
    shapes, shape_init = load_rounds(
        shape_config, lambda d, source: from_dict(shape_train.ShapeExperiment, d, source=source))
    if shape_finetune_config is not None:
        extra, _ = load_rounds(shape_finetune_config,
                               lambda d, source: from_dict(shape_train.ShapeExperiment, d, source=source))
        shapes.append(extra[-1])
    refines, refine_init = load_rounds(
        refine_config, lambda d, source: from_dict(refine_train.RefineExperiment, d, source=source))

    weights = detector_init
    for index, experiment in enumerate(detectors):
        weights = detector_train.train_detector(experiment, data, round_folder(out_path, "detector", index),
                                                device=device, progress=progress, init=weights)
    _install(weights, pipeline, FILES["detector"])
    if crops:
        weights = crop_init
        for index, experiment in enumerate(crops):
            weights = crop_head.train_crop_head(data, round_folder(out_path, "crop_head", index), experiment,
                                                device=device, progress=progress, init=weights)
        _install(weights, pipeline, FILES["crop-head"])
    shape_weights = shape_init
    for index, experiment in enumerate(shapes):
        shape_weights = shape_train.train_shape(data, round_folder(out_path, "shape", index), experiment,
                                                device=device, progress=progress, init=shape_weights)
    _install(shape_weights, pipeline, FILES["shape"])
    for stem, no_prior in ((FILES["refine"], False), (FILES["refine-no-prior"], True)):
        weights = refine_init
        for index, experiment in enumerate(refines):
            if no_prior:  # ablation a3d-no-prior: the same network with the prior channel zeroed
                experiment = refine_train.without_prior(experiment)
            weights = refine_train.train_refine(data, round_folder(out_path, stem, index), shape_weights,
                                                experiment, device=device, progress=progress, init=weights)
        _install(weights, pipeline, stem)
    return pipeline
