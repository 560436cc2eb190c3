"""``amodal3d train all``: stage 1 (detector, then its crop head), then 2-4 (shape prior), then 5
(refinement, with and without the prior for the ablation), each resumable; the result is a pipeline folder.

Each stage's config is the last round of a chain of fine-tune rounds (configs whose ``init`` field names
the config they continue, :mod:`amodal3d.configs`); every round of the chain is trained in order, each from
the previous one's weights. The defaults are the installed configs that rebuilt the shipped model
(:data:`amodal3d.configs.SHIPPED`), so ``amodal3d train all --data D --out R`` runs from any folder.

Any COCO-amodal folder trains (``images/<split>/`` + ``annotations/<split>.json``), with any number of
categories and any ids: the categories are the training split's own (or one ``object`` with
``class_agnostic``, or renamed by a ``category_map``), the models are sized from them and every weights
file records them, so ``predict --weights OUT/pipeline`` writes the dataset's ids and names."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from amodal3d.categories import Relabel, load_category_map, relabel
from amodal3d.configs import CONFIG_DIR, SHIPPED, rounds
from amodal3d.errors import DataError, WeightsError
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


def capped(experiment, max_iters: int | None):
    """``experiment`` with ``train.max_iters`` at most ``max_iters`` (None: unchanged)."""
    if max_iters is None:
        return experiment
    current = experiment.train.max_iters
    limit = max_iters if current is None else min(current, max_iters)
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, max_iters=limit))


def training_categories(data: str | Path, split: str, inits: list[Path | None], class_agnostic: bool = False,
                        category_map: str | Path | None = None) -> Relabel:
    """The categories every stage of ``train all`` learns, from the ``split`` of ``data``: its own
    ``categories``; ``class_agnostic``: one ``object``; ``category_map``: a JSON file renaming (merging,
    with null leaving out) the dataset's names. Weights a chain starts from (``inits``) must be of the
    same categories, or ``category_map`` must map the dataset's names onto theirs: a DataError naming
    both otherwise."""
    from amodal3d.data.dataset import AmodalDataset
    from amodal3d.engine.weights import load_taxonomy

    dataset = AmodalDataset(data, split)
    mapping = load_category_map(category_map) if category_map is not None else None
    weights = [Path(p) for p in inits if p is not None]
    model = load_taxonomy(weights[0]) if weights else None
    for other in weights[1:]:
        if not load_taxonomy(other).same_as(model):
            raise WeightsError(f"{other}: its categories ({load_taxonomy(other).describe()}) are not those of "
                               f"{weights[0]} ({model.describe()})")
    return relabel(dataset.source_taxonomy, model=model, class_agnostic=class_agnostic, category_map=mapping,
                   map_source=category_map or "--category-map", dataset_source=dataset.annotation_file,
                   model_source=f"the weights {weights[0]}" if weights else "the weights")


def train_all(data: str, out: str, detector_config: str = DEFAULT_CONFIGS["detector"],
              shape_config: str = DEFAULT_CONFIGS["shape"], refine_config: str = DEFAULT_CONFIGS["refine"],
              device: str = "auto", progress: bool = True, shape_finetune_config: str | None = None,
              crop_head_config: str | None = DEFAULT_CONFIGS["crop_head"], max_iters: int | None = None,
              class_agnostic: bool = False, category_map: str | Path | None = None,
              init_backbone: str | Path | None = None, init_detector: str | Path | None = None) -> Path:
    """Run (or resume) every round of every stage into ``OUT/<stage>[_finetune[N]]``; returns
    ``OUT/pipeline``. A finished round is skipped on a rerun (its run folder says it finished).

    ``*_config``: a YAML path or an installed config's name (:func:`amodal3d.configs.config_path`); the
    crop head's None skips it. ``shape_finetune_config``: one more shape round after the shape chain.
    ``max_iters``: caps the iterations of every round of every stage (a smoke run). The categories are
    the training split's (:func:`training_categories`: ``class_agnostic``, ``category_map``); the
    detector's classes, the crop head's and the shape model's templates are sized from them and every
    weights file records them. ``init_backbone`` / ``init_detector``: the detector chain's first round
    starts from that standard checkpoint (:mod:`amodal3d.models.pretrained`; a chain from scratch only)."""
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
    if detector_init is not None and (init_backbone is not None or init_detector is not None):
        raise WeightsError(f"{detector_config}: its chain starts from {detector_init}: a standard checkpoint "
                           "(--init-backbone / --init-detector) starts only a chain trained from scratch")
    detectors, crops, shapes, refines = ([capped(e, max_iters) for e in chain]
                                         for chain in (detectors, crops, shapes, refines))
    # the categories, before the first stage: a dataset whose categories differ from the weights a chain
    # starts from is an error now, not hours in
    splits = {e.split for e in detectors} | {"train"}
    labels = None
    for split in sorted(splits):
        found = training_categories(data, split, [detector_init, crop_init, shape_init], class_agnostic,
                                    category_map)
        if labels is not None and found != labels:
            raise DataError(f"{data}: the splits the stages train on have different categories ({split!r}: "
                            f"{found.taxonomy.describe()})")
        labels = found

    weights = detector_init
    for index, experiment in enumerate(detectors):
        first = {"init_backbone": init_backbone, "init_detector": init_detector} if index == 0 else {}
        weights = detector_train.train_detector(experiment, data, round_folder(out_path, "detector", index),
                                                device=device, progress=progress, init=weights, relabel=labels,
                                                **first)
    _install(weights, pipeline, FILES["detector"])
    if crops:
        weights = crop_init
        for index, experiment in enumerate(crops):
            weights = crop_head.train_crop_head(data, round_folder(out_path, "crop_head", index), experiment,
                                                device=device, progress=progress, init=weights, relabel=labels)
        _install(weights, pipeline, FILES["crop-head"])
    shape_weights = shape_init
    for index, experiment in enumerate(shapes):
        shape_weights = shape_train.train_shape(data, round_folder(out_path, "shape", index), experiment,
                                                device=device, progress=progress, init=shape_weights,
                                                relabel=labels)
    _install(shape_weights, pipeline, FILES["shape"])
    for stem, no_prior in ((FILES["refine"], False), (FILES["refine-no-prior"], True)):
        weights = refine_init
        for index, experiment in enumerate(refines):
            if no_prior:  # ablation a3d-no-prior: the same network with the prior channel zeroed
                experiment = refine_train.without_prior(experiment)
            weights = refine_train.train_refine(data, round_folder(out_path, stem, index), shape_weights,
                                                experiment, device=device, progress=progress, init=weights,
                                                relabel=labels)
        _install(weights, pipeline, stem)
    return pipeline
