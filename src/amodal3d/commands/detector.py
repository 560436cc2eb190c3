"""Step 1 detector: ``amodal3d train detector`` (the experiment itself is
:func:`amodal3d.models.detector_train.train_detector`).

One process (on a shared CPU machine add ``--threads 1``)::

    amodal3d train detector --config src/amodal3d/configs/detector_cpu_small.yaml --data DATA --out RUN

Several GPUs or machines (``--batch-size`` is per process)::

    torchrun --nproc_per_node 4 -m amodal3d train detector --config src/amodal3d/configs/detector_r50_fpn.yaml ...

Rerunning the same command with the same ``--out`` resumes from ``RUN/checkpoint.pt``. The run writes
``RUN/config.yaml``, ``RUN/log.jsonl`` and, at the end, ``RUN/model.safetensors`` + ``RUN/model.json``.
"""

from __future__ import annotations

import os

from amodal3d.commands.arguments import add_checkpoint_flags, non_negative_int, positive_float, positive_int, seed
from amodal3d.configs import CONFIG_DIR
from amodal3d.errors import Amodal3dError
from amodal3d.paths import check_output_dir


def register(sub, train_sub) -> None:
    """Add ``amodal3d train detector`` and ``amodal3d train crop-head``."""
    p = train_sub.add_parser(
        "detector", help="train the step-1 detector (visible, amodal or ORCNN heads)",
        description="Train (or resume, with the same --out) a detector; writes OUT/model.safetensors + "
                    "OUT/model.json, OUT/log.jsonl, OUT/config.yaml and OUT/checkpoint.pt.")
    p.add_argument("--config", required=True, help="experiment YAML, e.g. src/amodal3d/configs/detector_cpu_small.yaml")
    add_training_flags(p)
    add_checkpoint_flags(p)
    p.set_defaults(handler=cmd_train_detector)

    p = train_sub.add_parser(
        "crop-head", help="train the crop head: category and visible mask of each detection from its crop",
        description="Train (or resume, with the same --out) the crop head on ground-truth boxes jittered "
                    "like detections; writes OUT/model.safetensors + OUT/model.json and OUT/log.jsonl.")
    p.add_argument("--config", default=str(CONFIG_DIR / "crop_head_cpu.yaml"),
                   help="experiment YAML (default: the installed crop_head_cpu.yaml)")
    add_training_flags(p)
    p.set_defaults(handler=cmd_train_crop_head)


def add_training_flags(p) -> None:
    """Flags shared by ``train detector``, ``train crop-head`` and ``train refine``."""
    p.add_argument("--data", required=True, help="dataset folder (annotations/ and images/)")
    p.add_argument("--out", required=True, help="run folder; an existing run there is resumed")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="start from trained weights of the same architecture (model.safetensors of a run or "
                        "a shipped file): fine-tuning with this config's schedule; ignored on resume")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--epochs", type=positive_int, help="override train.epochs")
    p.add_argument("--batch-size", type=positive_int, help="override train.batch_size (per process)")
    p.add_argument("--workers", type=non_negative_int, help="override train.workers (data loading processes)")
    p.add_argument("--seed", type=seed, help="override train.seed")
    p.add_argument("--max-iters", type=positive_int, help="override train.max_iters")
    p.add_argument("--lr", type=positive_float, help="override train.lr")
    p.add_argument("--warmup-iters", type=non_negative_int, help="override train.warmup_iters")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (train.amp)")
    p.add_argument("--threads", type=positive_int,
                   help="torch CPU threads per process (default: torch's choice, the core count). On a "
                        "shared machine use 1: OpenMP threads that spin-wait slow training down many times "
                        "over when another process is busy (OMP_WAIT_POLICY defaults to PASSIVE here)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_category_flags(p)


def add_category_flags(p) -> None:
    """``--class-agnostic`` and ``--category-map``: which categories a training run learns
    (docs/custom-data.md)."""
    p.add_argument("--class-agnostic", action="store_true",
                   help="train one category, 'object', whatever the dataset's categories")
    p.add_argument("--category-map", default=None, metavar="FILE",
                   help="JSON {\"dataset name\": \"name\" or null}: rename, merge or (null) leave out the "
                        "dataset's categories; needed when the weights a run starts from (--init, a config's "
                        "init) have other categories")


def training_labels(args, split: str = "train"):
    """The :class:`~amodal3d.categories.Relabel` that ``--class-agnostic`` / ``--category-map`` ask for,
    checked against ``--init``; None without them (the dataset's own categories)."""
    if not args.class_agnostic and args.category_map is None:
        return None
    from amodal3d.paths import check_regular_file
    from amodal3d.train_all import training_categories

    if args.category_map is not None:
        check_regular_file(args.category_map, "--category-map")
    init = getattr(args, "init", None)
    return training_categories(args.data, split, [init], args.class_agnostic, args.category_map)


def training_overrides(args) -> dict:
    """The ``train`` fields set on the command line."""
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "workers": args.workers,
                 "seed": args.seed, "max_iters": args.max_iters, "lr": args.lr,
                 "warmup_iters": args.warmup_iters, "amp": True if args.amp else None}
    return {k: v for k, v in overrides.items() if v is not None}


def prepare_training(args, experiment_class):
    """What every ``train`` command does before training: passive OpenMP waits, ``--out`` checked,
    the experiment read with the CLI overrides, torch's thread count. Returns the experiment."""
    # Read by the OpenMP runtime when torch loads (torch is not imported before this handler runs): with
    # spinning (active) waits, 2 threads on a 2-core machine shared with another busy process ran ~30x
    # slower than 1 thread (measured); passive waits cost little when the machine is idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from amodal3d.engine.config import load_experiment

    check_output_dir(args.out, inputs=[args.data])
    experiment = load_experiment(experiment_class, args.config, training_overrides(args),
                                 init_given=args.init is not None)
    if args.threads:
        torch.set_num_threads(args.threads)
    return experiment


def cmd_train_detector(args) -> int:
    from amodal3d.engine.distributed import cleanup_distributed
    from amodal3d.models.detector_train import DetectorExperiment, train_detector

    if args.init is not None and (args.init_backbone or args.init_detector):
        flag = "--init-backbone" if args.init_backbone else "--init-detector"
        raise Amodal3dError(f"{flag}: give either --init (trained amodal3d weights) or {flag}, not both")
    experiment = prepare_training(args, DetectorExperiment)
    try:
        path = train_detector(experiment, args.data, args.out, device=args.device, progress=not args.quiet,
                              init=args.init, init_backbone=args.init_backbone, init_detector=args.init_detector,
                              relabel=training_labels(args, experiment.split))
    finally:
        cleanup_distributed()
    if path is not None and int(os.environ.get("RANK", 0)) == 0:
        print(path)
    return 0


def cmd_train_crop_head(args) -> int:
    from amodal3d.models.crop_head import CropHeadExperiment, train_crop_head

    experiment = prepare_training(args, CropHeadExperiment)
    print(train_crop_head(args.data, args.out, experiment, device=args.device, progress=not args.quiet,
                          init=args.init, relabel=training_labels(args)))
    return 0
