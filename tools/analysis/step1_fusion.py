"""How A3D weighs the step-1 detector's amodal head against steps 2-5, end to end, side by side in
one run: how ``DETECTOR_AMODAL_THRESHOLD`` was chosen (on the validation split).

    python tools/analysis/step1_fusion.py --data DATA [--split val] [--limit 300] [--thresholds 0.3,0.35,...]
    -> benchmarks/results/step1_fusion_<split>.json

Rules: ``join`` (the earlier rule, no longer a pipeline option: the detector's amodal mask, thresholded
at 0.5, joins the refined mask; here by hiding the detector's probabilities from the pipeline, which then
joins its masks as for a detector without them) and, for each threshold t, the mean of the two
probability maps > t (:func:`amodal3d.models.refine.weigh_detector_amodal`). Either way a hidden part
must lie under another instance's visible mask. Step 1 runs once (its output is replayed for every
rule); steps 2-5 run per rule.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.harness import evaluate
from amodal3d.evaluation.recorder import Recorder
from amodal3d.io import atomic_write_json
from amodal3d.methods import build_predictor
from amodal3d.models.refine import DETECTOR_AMODAL_THRESHOLD

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


class MasksOnly:
    """A step 1 whose amodal-head probabilities are hidden: the pipeline joins its masks instead."""

    def __init__(self, detector):
        self.detector = detector

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def predict(self, image):
        out = self.detector.predict(image)
        return dataclasses.replace(out, extras={k: v for k, v in out.extras.items() if k != "amodal_probs"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--thresholds", default="0.3,0.35,0.4,0.45,0.5")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/step1_fusion_<split>.json")
    args = parser.parse_args()
    segmenter = build_predictor("a3d")
    recorded = Recorder(segmenter.detector)  # step 1 runs once, replayed for every rule
    rows = []
    for threshold in [None, *map(float, args.thresholds.split(","))]:
        segmenter.detector = MasksOnly(recorded) if threshold is None else recorded
        segmenter.detector_amodal_threshold = DETECTOR_AMODAL_THRESHOLD if threshold is None else threshold
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
        "shipped_threshold": DETECTOR_AMODAL_THRESHOLD, "rows": rows, "machine": machine_description(),
    }, indent=2)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
