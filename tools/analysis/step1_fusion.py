"""How A3D weighs the step-1 detector's amodal head against steps 2-5, end to end, side by side in
one run: how ``STEP1_FUSION_THRESHOLD`` was chosen (on the validation split).

    python tools/analysis/step1_fusion.py --data DATA [--split val] [--limit 300] [--thresholds 0.3,0.35,...]
    -> benchmarks/results/step1_fusion_<split>.json

Rules: ``join`` (the earlier rule: the detector's amodal mask, thresholded at 0.5, joins the refined
mask) and, for each threshold t, the mean of the two probability maps > t
(:func:`amodal3d.models.refine.fuse_step1_amodal`). Either way a hidden part must lie under another
instance's visible mask. Step 1 runs once (its output is replayed for every rule); steps 2-5 run per rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.harness import build_predictor, evaluate
from amodal3d.evaluation.predictor import Recorder
from amodal3d.io import atomic_write_json
from amodal3d.models.refine import STEP1_FUSION_THRESHOLD

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--thresholds", default="0.3,0.35,0.4,0.45,0.5")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/step1_fusion_<split>.json")
    args = parser.parse_args()
    segmenter = build_predictor("a3d")
    segmenter.detector = Recorder(segmenter.detector)  # step 1 runs once, replayed for every rule
    rows = []
    for threshold in [None, *map(float, args.thresholds.split(","))]:
        segmenter.step1_fusion = threshold
        r = evaluate(segmenter, args.data, args.split, "end-to-end", limit=args.limit, progress=not rows)
        rows.append({"rule": "join" if threshold is None else f"mean > {threshold}", "threshold": threshold,
                     "miou": r["miou"], "occluded_miou": r["occluded_miou"],
                     "matched_occluded_miou": r["matched_occluded_miou"], "amodal_ap": r["amodal_ap"]})
        print(f"{rows[-1]['rule']:12s} mIoU {100 * r['miou']:.1f}  occluded {100 * r['occluded_miou']:.1f}  "
              f"amodal AP {100 * r['amodal_ap']['AP']:.1f}", flush=True)
    out = args.out or RESULTS / f"step1_fusion_{args.split}.json"
    atomic_write_json(out, {
        "benchmark": "A3D end to end against how the step-1 amodal head is weighed against steps 2-5",
        "command": f"python tools/analysis/step1_fusion.py --data D --split {args.split} --limit {args.limit} "
                   f"--thresholds {args.thresholds}",
        "shipped_threshold": STEP1_FUSION_THRESHOLD, "rows": rows, "machine": machine_description(),
    }, indent=2)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
