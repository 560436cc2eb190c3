"""End-to-end figures against the evaluation score threshold, side by side in one run: how
``EVAL_SCORE_THRESHOLD`` was chosen (on the validation split).

    python benchmarks/eval_threshold.py --data DATA [--split val] [--limit 300]
        [--thresholds 0.05,0.1,0.2] [--methods a3d,maskrcnn-amodal]
    -> benchmarks/results/eval_threshold_<split>.json

Each method runs end to end in the harness at each threshold (``amodal3d evaluate --score-threshold
T`` does the same, one at a time). Extra detections cost nothing in mIoU (each ground truth is
matched to its best one) and AP ranks them; what a lower threshold costs is time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD, evaluate
from amodal3d.io import atomic_write_json
from amodal3d.methods import build_predictor

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--thresholds", default="0.05,0.1,0.2")
    parser.add_argument("--methods", default="a3d,maskrcnn-amodal")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/eval_threshold_<split>.json")
    args = parser.parse_args()
    rows = []
    for method in args.methods.split(","):
        for threshold in map(float, args.thresholds.split(",")):
            result = evaluate(build_predictor(method, score_threshold=threshold), args.data, args.split,
                              "end-to-end", limit=args.limit)
            rows.append({"method": method, "score_threshold": threshold,
                         **{key: result[key] for key in ("miou", "occluded_miou", "matched_occluded_miou",
                                                         "num_matched", "num_instances", "num_predictions",
                                                         "images_per_s")},
                         "amodal_ap": result["amodal_ap"]["AP"], "visible_ap50": result["visible_ap"]["AP50"]})
            r = rows[-1]
            print(f"{method:16s} threshold {threshold:<5} mIoU {100 * r['miou']:.1f}  occluded "
                  f"{100 * r['occluded_miou']:.1f}  matched {r['num_matched']} of {r['num_instances']}  "
                  f"predictions {r['num_predictions']}  amodal AP {100 * r['amodal_ap']:.1f}  "
                  f"{r['images_per_s']:.2f} img/s", flush=True)
    out = args.out or RESULTS / f"eval_threshold_{args.split}.json"
    atomic_write_json(out, {
        "benchmark": "end-to-end figures against the evaluation score threshold",
        "command": f"python benchmarks/eval_threshold.py --data D --split {args.split} --limit {args.limit} "
                   f"--thresholds {args.thresholds} --methods {args.methods}",
        "shipped_threshold": EVAL_SCORE_THRESHOLD, "rows": rows,
        "machine": machine_description(),
    }, indent=2)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
