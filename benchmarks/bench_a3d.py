"""A3D against its baselines and ablations, side by side in one run, both protocols.

    python benchmarks/bench_a3d.py --data DATA [--split test] [--limit 300] [--weights cpu-small]

Every method runs in the same harness (``amodal3d.evaluation.harness``) on the same images:
visible-as-amodal, convex hull, Mask R-CNN trained on amodal masks, ORCNN, A3D and its ablations
(a3d-no-prior, a3d-no-refine, prior-only). When the weights have a crop head (step 1b), the
end-to-end detector-based rows also run without it (``METHOD/no-crop-head``), side by side. Writes
``benchmarks/results/a3d.json`` (all rows, both protocols, per-stage milliseconds of A3D) and
``benchmarks/results/baselines.json`` (the issue-4 view: detector AP, amodal mIoU per category,
occluded mIoU, amodal AP, training time, speed), plus Markdown tables
``benchmarks/results/a3d_<protocol>.md``. A3D's differences from the rows of :data:`COMPARED` come with
95 % intervals from a paired bootstrap over the images (``amodal3d compare``), from the per-instance
scores of those rows, kept in ``a3d_<protocol>_instances.json``. ``--results DIR`` writes all of it
to another folder (e.g. for a run on a whole split).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from amodal3d.evaluation.compare import FIGURES, compare_results, format_comparison
from amodal3d.evaluation.harness import PROTOCOLS, evaluate, markdown_table
from amodal3d.io import atomic_write_bytes, atomic_write_json
from amodal3d.methods import METHODS, build_predictor
from amodal3d.pipeline import resolve_pipeline_dir

RESULTS = Path(__file__).resolve().parent / "results"
COMPARED = ("maskrcnn-amodal", "orcnn", "a3d-no-prior")  # A3D minus each, with a bootstrap interval


def training_seconds(weights_json: Path, prefix: str = "") -> dict:
    """Training wall time recorded beside shipped weights: ``extra.train_seconds`` (this project's CPU
    machine) and, for weights trained further on a GPU, ``extra.gpu_finetune.train_seconds``."""
    try:
        extra = json.loads(weights_json.read_text()).get("extra", {})
    except (OSError, json.JSONDecodeError):
        extra = {}
    gpu = extra.get("gpu_finetune") or {}
    return {f"{prefix}training_seconds": extra.get("train_seconds"),
            f"{prefix}gpu_finetune_seconds": gpu.get("train_seconds"),
            f"{prefix}gpu_finetune_device": gpu.get("gpu")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N images of the split")
    parser.add_argument("--weights", default="cpu-small", help="pipeline folder or built-in name")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--protocols", default="given-visible,end-to-end")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--results", default=None, help="folder of the JSON and Markdown files (default: "
                                                         "benchmarks/results)")
    parser.add_argument("--without-crop-head", default="visible,orcnn,maskrcnn-amodal,a3d",
                        help="end-to-end methods also run without step 1b (rows 'METHOD/no-crop-head'), "
                             "when the weights have a crop head")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = resolve_pipeline_dir(args.weights)
    out = Path(args.results) if args.results else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    detector_weights = {"visible": folder / "detector.safetensors", "convex-hull": folder / "detector.safetensors",
                        "maskrcnn-amodal": folder / "maskrcnn_amodal.safetensors",
                        "orcnn": folder / "detector.safetensors"}  # the shipped step 1 is the ORCNN model
    results: dict[str, dict[str, dict]] = {}
    stage_ms = {}
    for protocol in args.protocols.split(","):
        results[protocol] = {}
        runs = [(m, True) for m in args.methods.split(",")]
        if protocol == "end-to-end" and (folder / "crop_head.safetensors").is_file():
            runs += [(m, False) for m in args.without_crop_head.split(",") if m in args.methods.split(",")]
        for method, crop_head in runs:
            weights = detector_weights.get(method, folder)
            if protocol == "given-visible" and method in ("visible", "convex-hull"):
                weights = None  # they complete the given masks; no detector involved
            predictor = build_predictor(method, weights=weights, device="cpu", crop_head=crop_head)
            result = evaluate(predictor, args.data, args.split, protocol, limit=args.limit)
            row = method if crop_head else f"{method}/no-crop-head"
            result["method"] = row
            results[protocol][row] = result
            print(f"{protocol:13s} {row:16s} mIoU {100 * result['miou']:.1f}  occluded "
                  f"{100 * (result['occluded_miou'] or 0):.1f}  amodal AP {100 * (result['amodal_ap']['AP'] or 0):.1f}"
                  f"  {result['images_per_s']:.2f} img/s", flush=True)
            if row == "a3d":
                stage_ms[protocol] = predictor.stage_ms()
        instances = {row: r.pop("instances") for row, r in results[protocol].items()}
        instances = {row: scores for row, scores in instances.items() if row in ("a3d", *COMPARED)}
        path, instances_path = out / f"a3d_{protocol}.json", out / f"a3d_{protocol}_instances.json"
        if path.is_file():  # keep rows of other methods measured on the same images (an earlier --methods run)
            old = json.loads(path.read_text())
            same = all(old["arguments"].get(k) == getattr(args, k) for k in ("data", "split", "limit"))
            if same:
                results[protocol] = {**old["results"], **results[protocol]}
                stage_ms.setdefault(protocol, old.get("a3d_stage_ms"))
                if instances_path.is_file():
                    instances = {**json.loads(instances_path.read_text()), **instances}
        order = [r for m in METHODS for r in (m, f"{m}/no-crop-head") if r in results[protocol]]
        results[protocol] = {m: results[protocol][m] for m in order}
        atomic_write_json(instances_path, instances)
        atomic_write_bytes(out / f"a3d_{protocol}.md",
                           markdown_table(list(results[protocol].values())).encode())
        machine = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                   "platform": platform.platform(), "torch": torch.__version__, "loadavg": os.getloadavg()}
        atomic_write_json(path,
                          {"results": results[protocol], "a3d_stage_ms": stage_ms.get(protocol),
                           "arguments": vars(args), "machine": machine}, indent=2)
    combine(out, detector_weights)


def intervals(rows: dict[str, dict], instances: dict[str, dict]) -> dict:
    """A3D minus each row of COMPARED with per-instance scores (``instances``: row -> evaluate()'s
    ``instances``): mIoU and occluded mIoU differences with their 95 % paired-bootstrap intervals over
    the images, in percentage points."""
    out = {}
    for other in COMPARED:
        if other not in rows or "a3d" not in instances or other not in instances:
            continue
        comparison = compare_results({**rows["a3d"], "instances": instances["a3d"]},
                                     {**rows[other], "instances": instances[other]}, names=("a3d", other))
        print(format_comparison(comparison), flush=True)
        out[f"a3d_minus_{other}"] = {
            figure: {key: None if comparison[figure][key] is None else round(100 * comparison[figure][key], 2)
                     for key in ("difference", "low", "high")}
            | {"share_not_above_zero": comparison[figure]["share_not_above_zero"]}
            for figure in FIGURES}
    if out:  # the settings of the last comparison, shared by all
        out["bootstrap"] = {key: comparison["miou"][key] for key in ("resamples", "level", "seed")} | {
            "unit": "image", "command": "amodal3d compare A.json B.json"}
    return out


def combine(folder: Path, detector_weights: dict[str, Path]) -> None:
    """a3d.json (every protocol side by side, A3D's margins) and baselines.json from the per-protocol files
    in ``folder``."""
    paths = {protocol: folder / f"a3d_{protocol}.json" for protocol in sorted(PROTOCOLS)}
    per_protocol = {protocol: json.loads(path.read_text()) for protocol, path in paths.items() if path.is_file()}
    results = {protocol: data["results"] for protocol, data in per_protocol.items()}
    summary = {}
    for protocol, rows in results.items():
        if "a3d" in rows and "maskrcnn-amodal" in rows:
            a3d = rows["a3d"]
            margins = {"maskrcnn_miou": ("maskrcnn-amodal", "miou"),
                       "maskrcnn_occluded_miou": ("maskrcnn-amodal", "occluded_miou"),
                       "maskrcnn_matched_occluded_miou": ("maskrcnn-amodal", "matched_occluded_miou"),
                       "no_prior_miou": ("a3d-no-prior", "miou")}
            summary[protocol] = {f"a3d_minus_{name}": round(100 * (a3d[key] - rows[other][key]), 2)
                                 for name, (other, key) in margins.items()
                                 if a3d.get(key) is not None and rows.get(other, {}).get(key) is not None}
            instances_path = folder / f"a3d_{protocol}_instances.json"
            instances = json.loads(instances_path.read_text()) if instances_path.is_file() else {}
            summary[protocol]["intervals"] = intervals(rows, instances)
    atomic_write_json(folder / "a3d.json", {"results": results, "summary": summary,
                                             "a3d_stage_ms": {p: d["a3d_stage_ms"] for p, d in per_protocol.items()},
                                             "runs": {p: {"arguments": d["arguments"], "machine": d["machine"]}
                                                      for p, d in per_protocol.items()}}, indent=2)
    baselines = {}
    for method in ("visible", "convex-hull", "maskrcnn-amodal", "orcnn"):
        rows = {p: results[p][method] for p in results if method in results[p]}
        if not rows:
            continue
        e2e = rows.get("end-to-end", next(iter(rows.values())))
        baselines[method] = {
            "visible_ap": e2e["visible_ap"], "amodal_ap": e2e["amodal_ap"], "miou": e2e["miou"],
            "occluded_miou": e2e["occluded_miou"],
            "per_category_miou": {k: v["miou"] for k, v in e2e["per_category"].items()},
            "given_visible": {k: rows["given-visible"][k] for k in ("miou", "occluded_miou", "amodal_ap")}
            if "given-visible" in rows else None,
            "inference_images_per_s": e2e["images_per_s"],
            **training_seconds(detector_weights[method].with_suffix(".json")),
        }
        alone = results.get("end-to-end", {}).get(f"{method}/no-crop-head")
        if alone is not None:  # step 1b: the rows above use the crop head beside the detector
            baselines[method].update(training_seconds(detector_weights[method].with_name("crop_head.json"),
                                                      prefix="crop_head_"))
            baselines[method]["without_crop_head"] = {k: alone[k] for k in ("visible_ap", "amodal_ap", "miou",
                                                                            "occluded_miou", "images_per_s")}
    atomic_write_json(folder / "baselines.json", {"baselines": baselines}, indent=2)


if __name__ == "__main__":
    main()
