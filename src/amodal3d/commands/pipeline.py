"""Full-pipeline commands: ``predict``, ``train refine`` and ``train all``."""

from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path

from amodal3d.commands.arguments import add_checkpoint_flags, int_range, non_negative_int, positive_int, probability
from amodal3d.commands.detector import add_category_flags, add_training_flags
from amodal3d.configs import CONFIG_DIR, SHIPPED
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.paths import check_regular_file

# the one rule for what predict reads, in a folder, from a glob or named: the formats read_image
# decodes (a GIF: its first frame)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

PREDICT_EPILOG = """\
outputs (OUT/): results.json (COCO results, RLE; file_name = the image path as given), overlays/NAME.png
and meshes/NAME_K.EXT, NAME being the image's path relative to the folder all inputs share, without its
suffix (predict a/ b/ writes overlays/a/x.png and overlays/b/x.png). --visible: an entry names an image
when its file_name is a path suffix of the image's path (x.png or a/x.png name a/x.png); an entry naming
two inputs, or two entries naming one, is an error.

exit status: 0 every image succeeded; 1 some image(s) failed (each named on the output, results.json
holds the others); 2 nothing was run (bad argument, missing file or weights, unusable --out)."""

# train all: the stages' configs, installed with the package (amodal3d/configs): the last rounds of the chains
# of fine-tune rounds that trained the shipped weights, found from any folder
DEFAULT_CONFIGS = {f"{stage}_config": str(CONFIG_DIR / SHIPPED[stage])
                   for stage in ("detector", "crop_head", "shape", "refine")} | {"shape_finetune_config": "none"}


def register(sub, train_sub) -> None:
    p = sub.add_parser("predict", help="amodal masks, meshes and viewpoints for images (files, folders, globs)",
                       description="Amodal masks, meshes and viewpoints for images; an image that fails is "
                                   "named and the others still run.",
                       epilog=PREDICT_EPILOG, formatter_class=_DefaultsAndEpilog)
    p.add_argument("images", nargs="+",
                   help=f"image files, folders (their images, not recursive) or glob patterns; images are "
                        f"the files ending in {', '.join(IMAGE_SUFFIXES)}")
    p.add_argument("--out", required=True, help="output folder: results.json (COCO, RLE) and overlays")
    p.add_argument("--weights", default="cpu-small", help="built-in model name or pipeline folder")
    p.add_argument("--fit-steps", type=non_negative_int, default=None,
                   help="render-and-compare steps fitting each prior's camera and shape code to its visible mask "
                        "before refinement (default: the steps the refinement was trained with, 10 for cpu-small, "
                        "about 160 ms per image on 2 cores; 0: the prior as predicted, faster)")
    p.add_argument("--single-view", action="store_true",
                   help="step 1 detects in the image only, not also in its mirror image (faster, finds fewer "
                        "objects)")
    p.add_argument("--visible", default=None,
                   help="COCO JSON of visible masks (e.g. from another segmenter): run steps 2-5 only")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--score-threshold", type=probability, default=None, metavar="T",
                   help="keep objects scoring at least T (default 0.2: the best F1 of step 1 on the "
                        "validation split; amodal3d evaluate keeps every object step 1 proposes)")
    p.add_argument("--meshes", choices=["none", "obj", "glb"], default="none", help="write each instance's mesh")
    p.add_argument("--canvas-margin", type=int_range(0, 1024), default=0, metavar="M",
                   help="also continue each amodal mask M pixels past every image border: results.json gets "
                        "amodal_canvas (RLE of the (H+2M, W+2M) canvas), canvas_offset [x, y] (the canvas pixel "
                        "of image pixel (0, 0)) and canvas_size [h, w]; at most 1024 (pipeline.MAX_CANVAS_MARGIN)")
    p.add_argument("--no-overlays", action="store_true")
    p.set_defaults(handler=cmd_predict)

    p = train_sub.add_parser("refine", help="train step 5 on the priors of a trained shape model; resumable",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_training_flags(p)
    p.add_argument("--shape-weights", required=True, help="trained shape model (.safetensors)")
    p.add_argument("--config", default=None, help="YAML with 'model' (RefineConfig) and 'train' sections")
    p.add_argument("--no-prior", action="store_true", help="ablation a3d-no-prior: same net, prior zeroed")
    p.add_argument("--limit-images", type=positive_int, default=None)
    p.set_defaults(handler=cmd_train_refine)

    p = train_sub.add_parser("all", help="stages 1 -> 2-4 -> 5 in order, resumable at any stage",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="run folder; OUT/pipeline is a folder --weights accepts")
    p.add_argument("--detector-config", default=DEFAULT_CONFIGS["detector_config"],
                   help="a config's rounds (its 'init' chain) are trained in order; the defaults, installed "
                        "with the package, rebuild the shipped model")
    p.add_argument("--crop-head-config", default=DEFAULT_CONFIGS["crop_head_config"],
                   help="the crop head, trained after the detector ('none': skip)")
    p.add_argument("--shape-config", default=DEFAULT_CONFIGS["shape_config"], help="steps 2-4, the shape prior")
    p.add_argument("--shape-finetune-config", default=DEFAULT_CONFIGS["shape_finetune_config"],
                   help="one more shape round started from the shape config's weights ('none': skip)")
    p.add_argument("--refine-config", default=DEFAULT_CONFIGS["refine_config"],
                   help="step 5, trained with the prior and without it (a3d-no-prior)")
    p.add_argument("--max-iters", type=positive_int, default=None, metavar="N",
                   help="cap the iterations of every round of every stage at N (a smoke run)")
    add_category_flags(p)
    add_checkpoint_flags(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_train_all)


class _DefaultsAndEpilog(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, the epilog's lines as written."""


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def expand_images(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths, each once. One rule
    (:data:`IMAGE_SUFFIXES`) everywhere: a folder and a pattern give their files with those suffixes, a
    named file with another suffix is refused. An argument that names nothing is an error; a folder
    or a pattern without images too."""
    supported = ", ".join(IMAGE_SUFFIXES)
    paths: list[Path] = []
    for item in items:
        if not item.strip():
            raise DataError(f"{item!r}: an empty image argument (give a file, folder or pattern)")
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if _is_image(p) and p.is_file())
            if not found:
                raise DataError(f"{path}: the folder holds no images ({supported})")
            paths += found
        elif path.exists():
            if not _is_image(path):
                raise DataError(f"{path}: not an image file name (supported: {supported})")
            paths.append(check_regular_file(path))
        elif any(ch in item for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matched:
                raise DataError(f"{item}: the pattern matches no file")
            matched = [p for p in matched if _is_image(p)]
            if not matched:
                raise DataError(f"{item}: the pattern matches no image ({supported})")
            paths += matched
        else:
            raise DataError(f"{item}: no such file or folder")
    unique: dict[str, Path] = {}
    for path in paths:  # a folder and a file in it, or two overlapping patterns: each image once
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())


def cmd_predict(args) -> int:
    from amodal3d.pipeline import DEFAULT_SCORE_THRESHOLD, PipelineOptions
    from amodal3d.predict import predict_files

    threshold = DEFAULT_SCORE_THRESHOLD if args.score_threshold is None else args.score_threshold
    options = PipelineOptions(device=args.device, score_threshold=threshold, fit_steps=args.fit_steps,
                              mirrored_detections=not args.single_view, canvas_margin=args.canvas_margin)
    summary = predict_files(expand_images(args.images), Path(args.out), args.weights, options,
                            visible_json=args.visible, meshes=args.meshes, overlays=not args.no_overlays)
    print(f"{args.out}: {summary['images']} image(s), {summary['instances']} instance(s), "
          f"{len(summary['failed'])} failed")
    for _, reason in summary["failed"]:
        print(f"  failed: {reason}")
    return 1 if summary["failed"] else 0  # 2: an Amodal3dError before any image ran (cli.main)


def cmd_train_refine(args) -> int:
    from amodal3d.commands.detector import prepare_training, training_labels
    from amodal3d.models.refine_train import RefineExperiment, train_refine, without_prior

    if args.config is not None:
        check_regular_file(args.config, "--config")
    check_regular_file(args.shape_weights, "--shape-weights")
    experiment = prepare_training(args, RefineExperiment)
    if args.no_prior:
        experiment = without_prior(experiment)
    print(train_refine(args.data, args.out, args.shape_weights, experiment, device=args.device,
                       limit_images=args.limit_images, progress=not args.quiet, init=args.init,
                       relabel=training_labels(args)))
    return 0


def cmd_train_all(args) -> int:
    from amodal3d.train_all import train_all

    def optional(path: str) -> str | None:
        return None if path.lower() == "none" else path

    # every stage's config before the first stage trains (a missing refine config would otherwise stop
    # the run hours in)
    for option in ("detector_config", "crop_head_config", "shape_config", "shape_finetune_config", "refine_config"):
        path, flag = optional(getattr(args, option)), "--" + option.replace("_", "-")
        if path is None:
            continue
        if not Path(path).exists() and not Path(path).is_absolute():
            hint = " (the default is relative to a checkout of the amodal3d repository)" \
                if path == DEFAULT_CONFIGS[option] else ""
            raise Amodal3dError(f"{flag}: config file {path} not found from {os.getcwd()}{hint}; pass its path "
                                f"with {flag}")
        check_regular_file(path, flag)
    for flag, path in (("--category-map", args.category_map), ("--init-backbone", args.init_backbone),
                       ("--init-detector", args.init_detector)):
        if path is not None:
            check_regular_file(path, flag)
    print(train_all(args.data, args.out, args.detector_config, args.shape_config, args.refine_config,
                    args.device, progress=not args.quiet, shape_finetune_config=optional(args.shape_finetune_config),
                    crop_head_config=optional(args.crop_head_config), max_iters=args.max_iters,
                    class_agnostic=args.class_agnostic, category_map=args.category_map,
                    init_backbone=args.init_backbone, init_detector=args.init_detector))
    return 0
