"""Accuracy of the pairwise occlusion order (:mod:`amodal3d.occlusion`) on generated test scenes.

    python benchmarks/bench_occlusion.py [--scenes 60] [--seed 0] [--weights cpu-small] [--split test]
    -> benchmarks/results/occlusion_order.json (the shipped figures: --scenes 150 on the test split)

Scenes are drawn as ``amodal3d demo`` draws them (procedural meshes of the test split, unseen in
training; ``--split val`` draws other scenes from the validation meshes, to choose a rule on them
and write the result elsewhere with ``--out``). Ground truth: every pair of objects whose true amodal
masks overlap (>= 4 pixels) is an *overlapping pair*; the one of lower ``depth_order`` (nearer the
camera, by its centre) is in front. An overlapping pair is right when
:func:`~amodal3d.occlusion.occlusion_pairs` orders the pair that way; a pair it leaves unordered (its
masks do not overlap) counts as wrong. ``extra_pairs``: pairs it orders whose true amodal masks do
not overlap (not counted in the accuracy). Four inputs:

* ``ground-truth masks``: the true visible and amodal masks (the rule itself, against depth order);
* ``given-visible``: true visible masks, amodal masks predicted by the pipeline (steps 2-5), as
  ``amodal3d predict --visible`` orders them;
* ``given-visible + amodal probabilities``: the same with ``occlusion_pairs(soft=...)`` given the
  step-5 probabilities the pipeline thresholds into those masks (pasted into the image, before the
  occluder constraint: ``extras["amodal_probs"]``), as ``amodal3d predict`` and the page order them;
* ``end-to-end``: the pipeline's own instances, matched to the truth by visible-mask IoU >= 0.5; a
  pair with an unmatched object counts as wrong.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from amodal3d.data.meshes import open_mesh_source
from amodal3d.data.scene import SceneConfig, render_scene
from amodal3d.evaluation import metrics
from amodal3d.io import atomic_write_json
from amodal3d.masks import decode_rle, xywh_to_xyxy
from amodal3d.occlusion import MIN_OVERLAP_PIXELS, occlusion_pairs
from amodal3d.structures import GivenVisible

RESULTS = Path(__file__).resolve().parent / "results"
PROTOCOLS = ("ground-truth masks", "given-visible", "given-visible + amodal probabilities", "end-to-end")


def true_pairs(amodal: np.ndarray, depth_order: list[int]) -> list[tuple[int, int]]:
    """(front, back) of every pair of true amodal masks overlapping by >= MIN_OVERLAP_PIXELS."""
    n = len(amodal)
    flat = amodal.reshape(n, -1)
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            if int((flat[i] & flat[j]).sum()) >= MIN_OVERLAP_PIXELS:
                out.append((i, j) if depth_order[i] < depth_order[j] else (j, i))
    return out


def score(truth: list[tuple[int, int]], visible: np.ndarray, amodal: np.ndarray,
          index: np.ndarray | None = None, soft: np.ndarray | None = None) -> tuple[int, int, int]:
    """(right, ordered, extra) over ``truth``; ``index`` maps true objects to rows of the masks (-1:
    none); ``extra``: ordered pairs of matched rows that are not a pair of ``truth``."""
    index = np.arange(len(visible)) if index is None else index
    found = {(p.front, p.back) for p in occlusion_pairs(visible, amodal, soft=soft)} if len(visible) else set()
    right = ordered = 0
    true_rows = set()
    for front, back in truth:
        f, b = int(index[front]), int(index[back])
        if f < 0 or b < 0:
            continue
        true_rows.add(frozenset((f, b)))
        right += (f, b) in found
        ordered += (f, b) in found or (b, f) in found
    matched = {int(k) for k in index if k >= 0}
    extra = sum(set(pair) <= matched and frozenset(pair) not in true_rows for pair in found)
    return right, ordered, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default="cpu-small")
    parser.add_argument("--split", default="test", choices=("test", "val"))
    parser.add_argument("--out", default=str(RESULTS / "occlusion_order.json"))
    args = parser.parse_args()
    from amodal3d.pipeline import AmodalSegmenter

    segmenter = AmodalSegmenter.from_pretrained(args.weights)
    source = open_mesh_source("procedural", seed=args.seed, only_split=None)
    totals = {p: {"pairs": 0, "right": 0, "ordered": 0, "extra_pairs": 0} for p in PROTOCOLS}
    start = time.perf_counter()
    for i in range(args.scenes):
        stream = [args.seed, i] if args.split == "test" else [args.seed, i, 1]  # val: scenes of their own
        scene = render_scene(np.random.default_rng(stream), source, args.split, SceneConfig())
        anns = scene.annotations
        visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        amodal = np.stack([decode_rle(a["amodal_segm"]) for a in anns])
        truth = true_pairs(amodal, [a["depth_order"] for a in anns])
        if not truth:
            continue
        given = GivenVisible(visible, np.array([a["category_id"] for a in anns]),
                             np.array([xywh_to_xyxy(a["visible_bbox"]) for a in anns], np.float32))
        completed = segmenter.predict(scene.image, given)
        probabilities = completed.extras["amodal_probs"]
        detected = segmenter.predict(scene.image)
        match = metrics.match_greedy(metrics.mask_iou_matrix(visible, detected.visible_masks))
        runs = {"ground-truth masks": score(truth, visible, amodal),
                "given-visible": score(truth, visible, completed.amodal_masks),
                "given-visible + amodal probabilities": score(truth, visible, completed.amodal_masks,
                                                              soft=probabilities),
                "end-to-end": score(truth, detected.visible_masks, detected.amodal_masks, match)}
        for protocol, (right, ordered, extra) in runs.items():
            totals[protocol]["pairs"] += len(truth)
            totals[protocol]["right"] += right
            totals[protocol]["ordered"] += ordered
            totals[protocol]["extra_pairs"] += extra
    for t in totals.values():
        t["accuracy"] = round(t["right"] / max(t["pairs"], 1), 4)
        t["ordered_fraction"] = round(t["ordered"] / max(t["pairs"], 1), 4)
        t["accuracy_of_ordered"] = round(t["right"] / max(t["ordered"], 1), 4)
    report = {"benchmark": "occlusion order on overlapping pairs (amodal3d.occlusion.occlusion_pairs)",
              "command": f"python benchmarks/bench_occlusion.py --scenes {args.scenes} --seed {args.seed} "
                         f"--weights {args.weights} --split {args.split}",
              "scenes": args.scenes, "weights": args.weights, "split": args.split,
              "method": "masks (in the amodal overlap, the one whose visible mask covers more of it is in "
                        "front; with amodal probabilities, pairs whose masks do not meet are ordered by the "
                        "probability mass each one's visible mask hides of the other); rendered depth is not "
                        "used: each instance's ROI camera has its own frame",
              "truth": "depth_order (object centres) of every pair whose true amodal masks overlap",
              "protocols": totals, "seconds": round(time.perf_counter() - start, 1),
              "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"}
    atomic_write_json(Path(args.out), report)
    for protocol, t in totals.items():
        print(f"{protocol:38s} {t['pairs']:4d} pairs  accuracy {100 * t['accuracy']:.1f} %  "
              f"(ordered {100 * t['ordered_fraction']:.1f} %, "
              f"right among ordered {100 * t['accuracy_of_ordered']:.1f} %, extra pairs {t['extra_pairs']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
