"""Evaluation commands: ``amodal3d evaluate`` (mIoU, occluded mIoU, occlusion bins, COCO mask AP) and
``amodal3d compare`` (the difference of two results, with bootstrap intervals)."""

from __future__ import annotations

import argparse

from amodal3d.commands.arguments import device, int_range, open_fraction, positive_int, probability, seed, split_name

PROTOCOLS = ("end-to-end", "given-visible")
MAX_RESAMPLES = 1_000_000


def register(sub, train_sub) -> None:
    p = sub.add_parser("evaluate", help="score a method on a dataset split (mIoU table, COCO mask AP)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Score a method on a dataset split; definitions in docs/metrics.md. "
                                   "Methods: visible, convex-hull (no model under given-visible), "
                                   "maskrcnn-amodal, orcnn, a3d, a3d-no-fit, a3d-no-prior, a3d-unconstrained, "
                                   "a3d-no-refine, a3d-steps-2-5, prior-only (shipped cpu-small weights unless "
                                   "--weights).")
    p.add_argument("--method", required=True, help="method name, e.g. visible, convex-hull, maskrcnn-amodal")
    p.add_argument("--data", required=True, help="dataset folder (annotations/<split>.json, images/<split>/)")
    p.add_argument("--split", type=split_name, default="test")
    p.add_argument("--protocol", default="end-to-end", choices=PROTOCOLS,
                   help="end-to-end: image only; given-visible: also the ground-truth visible instances")
    p.add_argument("--weights", default=None, help="model weights (.safetensors) for model-based methods")
    p.add_argument("--device", type=device, default="cpu", help="torch device for model-based methods")
    p.add_argument("--no-crop-head", action="store_true",
                   help="leave out the crop head (beside the detector weights): the detector's own "
                        "labels and visible masks")
    p.add_argument("--single-view", action="store_true",
                   help="step 1 detects in the image only, not also in its mirror image")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N images only")
    p.add_argument("--score-threshold", type=probability, default=None, metavar="T",
                   help="end to end, keep detections scoring at least T (default: the detector's floor, 0.05)")
    p.add_argument("--match-on", default="visible", choices=["visible", "amodal"],
                   help="masks whose IoU matches ground truth to predictions (end-to-end)")
    p.add_argument("--match-categories", action="store_true",
                   help="matching also requires equal categories (otherwise class-agnostic)")
    p.add_argument("--category-map", default=None, metavar="FILE",
                   help="JSON {\"dataset name\": \"model name\" or null}: read the split's categories as the "
                        "model's (needed when they are another taxonomy and you want per-category scores)")
    p.add_argument("--json", required=True, metavar="OUT", help="results JSON to write")
    p.add_argument("--markdown", default=None, metavar="OUT.md", help="also write a one-row Markdown table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("compare", help="difference of two evaluation results, with bootstrap intervals",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="A minus B (mIoU, occluded mIoU) on the same ground truth, with a paired "
                                   "bootstrap interval over images (docs/metrics.md). A and B are "
                                   "amodal3d evaluate --json files.")
    p.add_argument("a", metavar="A.json")
    p.add_argument("b", metavar="B.json")
    p.add_argument("--resamples", type=int_range(1, MAX_RESAMPLES), default=2000,
                   help="bootstrap resamples of the images")
    p.add_argument("--level", type=open_fraction, default=0.95, help="coverage of the interval, in (0, 1)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--json", default=None, metavar="OUT", help="also write the comparison as JSON")
    p.set_defaults(handler=cmd_compare)


def check_outputs(args) -> tuple:
    """``--json`` and ``--markdown`` can be written, differ, and are none of the inputs (the split's
    annotation file, its images, the weights): checked before the evaluation runs."""
    from pathlib import Path

    from amodal3d.data.dataset import split_paths
    from amodal3d.errors import Amodal3dError
    from amodal3d.paths import check_output_file, check_regular_file, resolved

    inputs = [*split_paths(args.data, args.split)]
    if args.weights and Path(args.weights).exists():
        if not Path(args.weights).is_dir():  # a weights file; a FIFO would block its reader forever
            check_regular_file(args.weights, "--weights")
        inputs.append(Path(args.weights))
    json_out = check_output_file(args.json, inputs, what="--json")
    if args.markdown is None:
        return json_out, None
    if resolved(args.markdown) == resolved(args.json):
        raise Amodal3dError(f"--markdown: {args.markdown} is also the --json file: refused (give two files)")
    return json_out, check_output_file(args.markdown, inputs, what="--markdown")


def cmd_evaluate(args) -> int:
    from amodal3d.evaluation.harness import (
        EVAL_SCORE_THRESHOLD,
        evaluate,
        format_summary,
        format_table,
        markdown_table,
    )
    from amodal3d.io import atomic_write_bytes, atomic_write_json
    from amodal3d.methods import build_predictor

    json_out, markdown_out = check_outputs(args)
    category_map = None
    if args.category_map is not None:
        from amodal3d.categories import load_category_map

        category_map = load_category_map(args.category_map)
    threshold = EVAL_SCORE_THRESHOLD if args.score_threshold is None else args.score_threshold
    predictor = build_predictor(args.method, weights=args.weights, device=args.device,
                                crop_head=not args.no_crop_head, score_threshold=threshold,
                                mirrored_detections=not args.single_view)
    result = evaluate(predictor, args.data, args.split, protocol=args.protocol, limit=args.limit,
                      progress=not args.quiet, match_on=args.match_on, match_categories=args.match_categories,
                      category_map=category_map, map_source=args.category_map or "--category-map")
    result["method"] = args.method
    result["score_threshold"] = threshold
    atomic_write_json(json_out, result, indent=2)
    print(format_table([result]))
    print()
    print(format_summary(result))
    print(json_out)
    if markdown_out is not None:
        atomic_write_bytes(markdown_out, markdown_table([result]).encode("utf-8"))
        print(markdown_out)
    return 0


def cmd_compare(args) -> int:
    from amodal3d.evaluation.compare import compare_results, format_comparison, load_result
    from amodal3d.io import atomic_write_json
    from amodal3d.paths import check_output_file

    json_out = check_output_file(args.json, [args.a, args.b], what="--json") if args.json else None
    comparison = compare_results(load_result(args.a), load_result(args.b), names=(args.a, args.b),
                                 resamples=args.resamples, level=args.level, seed=args.seed)
    print(format_comparison(comparison))
    if json_out is not None:
        atomic_write_json(json_out, comparison, indent=2)
        print(json_out)
    return 0
