"""Precision and recall of step 1 against the score threshold that ``amodal3d predict`` keeps
objects at, step 1 as shipped (image + mirror image) and on the image only, side by side in one run:
how ``DEFAULT_SCORE_THRESHOLD`` was chosen (on the validation split).

    python benchmarks/predict_threshold.py --data DATA [--split val] [--limit 300]
        [--thresholds 0.05,0.1,...]
    -> benchmarks/results/predict_threshold_<split>.json

Each variant of step 1 (the shipped visible detector and its crop head) runs once at the
evaluation floor; every threshold then scores the same detections, those whose objectness (the
group's summed detector scores) or whose score (objectness x p(label) x mask quality, what a user
sees) reaches it, in the harness (visible masks matched to the ground truth class-agnostically at
IoU >= 0.5, as ``amodal3d evaluate`` does). Precision = matched / kept, recall = matched /
ground-truth objects. ``predict`` itself runs the crop head only on objects whose objectness reaches
the threshold (a score never exceeds its objectness), so the mask quality in its scores ranks fewer
objects than here: its scores can differ slightly from these.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from amodal3d.engine.distributed import machine_description
from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD, evaluate
from amodal3d.evaluation.recorder import Recorder, image_key
from amodal3d.io import atomic_write_json
from amodal3d.methods import build_predictor
from amodal3d.pipeline import DEFAULT_SCORE_THRESHOLD
from amodal3d.structures import Instances

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"image + mirror image (shipped)": True, "image only (--single-view)": False}
RULES = ("objectness", "score")  # what the threshold is compared with


class Replay:
    """The recorded instances of each image whose ``rule`` (``score`` or ``objectness``) reaches
    ``threshold``."""

    def __init__(self, recorded: dict, rule: str, threshold: float, name: str):
        self.recorded, self.rule, self.threshold, self.name = recorded, rule, threshold, name

    def predict(self, image: np.ndarray, given=None) -> Instances:
        out = self.recorded[image_key(image)]
        keep = (out.scores if self.rule == "score" else out.extras["objectness"]) >= self.threshold
        return Instances(out.boxes[keep], out.labels[keep], out.scores[keep], out.visible_masks[keep],
                         out.amodal_masks[keep])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--thresholds", default="0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/predict_threshold_<split>.json")
    args = parser.parse_args()
    rows = []
    for variant, mirrored in VARIANTS.items():
        recorder = Recorder(build_predictor("visible", score_threshold=EVAL_SCORE_THRESHOLD,
                                            mirrored_detections=mirrored).detector)
        evaluate(recorder, args.data, args.split, "end-to-end", limit=args.limit)
        for rule, threshold in itertools.product(RULES, map(float, args.thresholds.split(","))):
            result = evaluate(Replay(recorder.kept, rule, threshold, recorder.name), args.data, args.split,
                              "end-to-end", limit=args.limit, progress=False)
            kept, matched, total = result["num_predictions"], result["num_matched"], result["num_instances"]
            precision, recall = matched / max(kept, 1), matched / max(total, 1)
            rows.append({"variant": variant, "mirrored_detections": mirrored, "kept_by": rule,
                         "score_threshold": threshold, "objects_per_image": kept / result["num_images"],
                         "num_predictions": kept, "num_matched": matched, "num_instances": total,
                         "precision": precision, "recall": recall,
                         "f1": 2 * precision * recall / max(precision + recall, 1e-9),
                         "visible_ap50": result["visible_ap"]["AP50"]})
            r = rows[-1]
            print(f"{variant:32s} {rule:10s} >= {threshold:<5} {r['objects_per_image']:5.2f} objects/image  "
                  f"precision {100 * precision:5.1f}  recall {100 * recall:5.1f}  F1 {100 * r['f1']:5.1f}  "
                  f"visible AP50 {r['visible_ap50']:.3f}", flush=True)
    best = {f"{v}, kept by {rule}": max((r for r in rows if r["variant"] == v and r["kept_by"] == rule),
                                        key=lambda r: r["f1"])["score_threshold"]
            for v, rule in itertools.product(VARIANTS, RULES)}
    out = args.out or RESULTS / f"predict_threshold_{args.split}.json"
    atomic_write_json(out, {
        "benchmark": "precision and recall of step 1 against the score threshold of amodal3d predict",
        "command": f"python benchmarks/predict_threshold.py --data D --split {args.split} --limit {args.limit} "
                   f"--thresholds {args.thresholds}",
        "shipped_threshold": DEFAULT_SCORE_THRESHOLD, "best_f1_threshold": best, "rows": rows,
        "machine": machine_description(),
    }, indent=2)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
