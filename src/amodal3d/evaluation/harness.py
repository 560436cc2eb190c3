"""The evaluation harness: run a predictor over a dataset split and compute every figure of
``docs/metrics.md`` (mIoU, occluded mIoU, occlusion bins, COCO mask AP), plus the tables.

- :func:`build_predictor` — method name -> :class:`~amodal3d.evaluation.predictor.Predictor`.
- :func:`evaluate` — predictor + dataset split + protocol -> JSON-ready results dict.
- :func:`format_table`, :func:`format_summary`, :func:`markdown_table` — render results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from amodal3d import CATEGORY_NAMES
from amodal3d.data.schema import categories_are_ours
from amodal3d.errors import Amodal3dError, DataError, WeightsError
from amodal3d.evaluation import metrics
from amodal3d.evaluation.baselines import ConvexHullOf, VisibleAsAmodal, masks_to_boxes
from amodal3d.evaluation.predictor import UNKNOWN_CATEGORY, GivenVisible, Instances, Predictor

PROTOCOLS = ("end-to-end", "given-visible")
# Every method name the harness knows, in table order; AVAILABLE ones can be built now.
METHODS = ("visible", "convex-hull", "maskrcnn-amodal", "orcnn", "a3d", "a3d-fit", "a3d-no-prior",
           "a3d-unconstrained", "a3d-no-refine", "a3d-steps-2-5", "prior-only")
_DETECTOR_METHODS = ("maskrcnn-amodal", "orcnn")
_PIPELINE_METHODS = ("a3d", "a3d-fit", "a3d-no-prior", "a3d-unconstrained", "a3d-no-refine", "a3d-steps-2-5",
                     "prior-only")
# Detections kept for evaluation (every method that detects uses the same): the detector's own floor
# (``box_score_thresh``), so every object it proposes: AP needs the whole ranking, and mIoU matches each
# ground truth to its best detection, so extra ones cost nothing there. Chosen on validation against
# 0.1 and 0.2 (benchmarks/eval_threshold.py, docs/metrics.md: 673 objects matched against 611 at 0.2).
EVAL_SCORE_THRESHOLD = 0.05
# Render-and-compare steps of the accurate setting ``a3d-fit`` (``predict --fit-steps 10``).
ACCURATE_FIT_STEPS = 10
# Shipped weights (inside the package) used when --weights is not given. The
# shipped step-1 detector is the ORCNN model (visible + amodal heads): A3D uses its visible head.
_SHIPPED_STEM = {"visible": "detector", "convex-hull": "detector", "maskrcnn-amodal": "maskrcnn_amodal",
                 "orcnn": "detector"}


def shipped_weights(name: str) -> Path | None:
    """The package's own weights for method ``name`` (None when not shipped)."""
    from amodal3d.pipeline import BUILTIN

    path = BUILTIN["cpu-small"] / f"{_SHIPPED_STEM.get(name, '')}.safetensors"
    return path if name in _SHIPPED_STEM and path.is_file() else None


# Detector heads each method needs (``DetectorConfig.heads`` of the weights).
_HEADS = {"visible": ("visible", "both"), "convex-hull": ("visible", "both"), "maskrcnn-amodal": ("amodal",),
          "orcnn": ("both",)}


def _load_detector(name: str, weights: str | Path | None, device: str, crop_head: bool,
                   score_threshold: float, mirrored_detections: bool = True) -> Predictor:
    """``DetectorPredictor`` of the detector exported at ``weights`` (a ``.safetensors`` file beside its
    ``.json``, or a run folder), imported lazily from ``amodal3d.models.detector``; its heads must suit
    method ``name``. With ``crop_head``, a ``crop_head.safetensors`` in the same folder (step 1b) is
    applied to its detections: every detector-based method of one folder shares it."""
    if weights is None:
        raise WeightsError(f"method {name!r} needs --weights (a trained detector's .safetensors file)")
    path = Path(weights)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found (method {name!r})")
    try:
        from amodal3d.models.detector import DetectorPredictor, load_detector
    except ImportError as error:
        raise Amodal3dError(f"method {name!r}: the detector model is not available ({error})") from None
    model = load_detector(path, device=device)
    heads = getattr(model, "heads", None)
    if heads not in _HEADS[name]:
        raise WeightsError(f"{path}: a detector with heads={heads!r}; method {name!r} needs heads "
                           f"{' or '.join(map(repr, _HEADS[name]))}")
    from amodal3d.models.crop_head import crop_head_beside

    head = crop_head_beside(path if path.is_dir() else path.parent, device) if crop_head else None
    return DetectorPredictor(model, name=None if name in ("visible", "convex-hull") else name,
                             score_threshold=score_threshold, crop_head=head,
                             mirrored_detections=mirrored_detections)


def build_predictor(name: str, weights: str | Path | None = None, device: str = "cpu",
                    crop_head: bool = True, score_threshold: float = EVAL_SCORE_THRESHOLD,
                    mirrored_detections: bool = True) -> Predictor:
    """The predictor of method ``name`` (see :data:`METHODS`).

    ``visible`` and ``convex-hull`` need no model under given-visible; with a detector (``weights``,
    default the shipped one) they also run end-to-end, post-processing its visible masks.
    ``maskrcnn-amodal`` (heads=amodal) and ``orcnn`` (heads=both) load a trained detector from
    ``weights`` (default: shipped). ``a3d`` and its ablations load a pipeline folder (default: the
    built-in ``cpu-small``). ``crop_head=False`` leaves out step 1b for every method (the detector's
    own labels and masks); ``mirrored_detections=False`` lets step 1 detect in the image only, not also
    in its mirror image. Methods that detect keep detections scoring at least ``score_threshold``
    (in [0, 1]). Unknown names and thresholds outside [0, 1] raise :class:`Amodal3dError`."""
    if not 0.0 <= score_threshold <= 1.0:
        raise Amodal3dError(f"score threshold must lie in [0, 1], got {score_threshold}")
    if name in _PIPELINE_METHODS:
        from amodal3d.pipeline import AmodalSegmenter

        unconstrained = name == "a3d-unconstrained"
        mode = "a3d" if name in ("a3d-unconstrained", "a3d-fit", "a3d-steps-2-5") else name
        segmenter = AmodalSegmenter.from_pretrained(weights or "cpu-small", mode=mode, device=device,
                                                    score_threshold=score_threshold,
                                                    occluder_constraint=not unconstrained,
                                                    fit_steps=ACCURATE_FIT_STEPS if name == "a3d-fit" else None,
                                                    crop_head=crop_head, detector_amodal=name != "a3d-steps-2-5",
                                                    mirrored_detections=mirrored_detections,
                                                    keep_by="objectness")
        segmenter.name = name
        return segmenter
    weights = weights if weights is not None else shipped_weights(name)
    if name in ("visible", "convex-hull"):
        detector = (_load_detector(name, weights, device, crop_head, score_threshold, mirrored_detections)
                    if weights is not None else None)
        return VisibleAsAmodal(detector) if name == "visible" else ConvexHullOf(detector)
    if name in _DETECTOR_METHODS:
        return _load_detector(name, weights, device, crop_head, score_threshold, mirrored_detections)
    raise Amodal3dError(f"unknown method {name!r}; available methods: {', '.join(METHODS)}")


def _check_output(out: object, height: int, width: int, given: GivenVisible | None, where: str) -> Instances:
    if not isinstance(out, Instances):
        raise Amodal3dError(f"{where}: the predictor returned {type(out).__name__}, not Instances")
    for key in ("visible_masks", "amodal_masks"):
        shape = np.shape(getattr(out, key))
        if len(shape) != 3 or tuple(shape[1:]) != (height, width):
            raise Amodal3dError(f"{where}: predicted {key} have shape {shape}, "
                                f"expected (N, {height}, {width})")
    if given is not None and len(out.labels) != len(given.labels):
        raise Amodal3dError(f"{where}: given-visible protocol: the predictor returned {len(out.labels)} "
                            f"instances for {len(given.labels)} given ones")
    return out


def _category_names(categories: list[dict]) -> dict[int, str]:
    """Category id -> unique display name, in id order."""
    names: dict[int, str] = {}
    for cat in sorted(categories, key=lambda c: int(c["id"])):
        name = str(cat.get("name", cat["id"]))
        names[int(cat["id"])] = name if name not in names.values() else f"{name}#{cat['id']}"
    return names


def evaluate(predictor: Predictor, data_root: str | Path, split: str, protocol: str = "end-to-end",
             limit: int | None = None, progress: bool = True, match_on: str = "visible",
             match_categories: bool = False, iou_threshold: float = metrics.IOU_THRESHOLD) -> dict:
    """Run ``predictor`` on ``data_root``'s ``split`` and score it (definitions: ``docs/metrics.md``).

    ``protocol``: ``end-to-end`` (the predictor sees the image only; ground truth is matched to
    predictions by ``match_on`` mask IoU >= ``iou_threshold``, greedy best first, labels must agree
    only with ``match_categories``) or ``given-visible`` (it also gets the ground-truth visible
    instances and returns them in order: the matching is the identity, AP uses score 1 and the
    given labels). ``limit``: first N images only. Crowd annotations (``iscrowd``) are left out of
    mIoU and are COCO crowd regions for AP.

    Returns a JSON-ready dict: ``method, protocol, split, data, num_images, num_instances,
    num_predictions, num_matched, categories, miou, occluded_miou, instance_miou, per_category,
    by_occlusion, amodal_ap, visible_ap, images_per_s`` (predictor time only), ``wall_images_per_s``,
    ``seconds``, the matching settings and ``instances`` (per ground-truth instance: image_id,
    category_id, occlude_rate, amodal_iou, occluded_iou, matched; for
    :func:`amodal3d.evaluation.compare.compare_results`). mIoU values lie in [0, 1] (None when undefined)."""
    from amodal3d.data.dataset import load_annotation_file, read_image, resolve_image_path, split_paths
    from amodal3d.masks import decode_rle, encode_rle

    if protocol not in PROTOCOLS:
        raise Amodal3dError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if match_on not in ("visible", "amodal"):
        raise Amodal3dError(f"match_on must be 'visible' or 'amodal', not {match_on!r}")
    method = str(getattr(predictor, "name", type(predictor).__name__))
    if protocol == "end-to-end" and getattr(predictor, "requires_given", False):
        raise Amodal3dError(f"method {method!r} under the end-to-end protocol needs a visible detector: "
                            f"pass --weights of a trained detector, or use --protocol given-visible")
    ann_file, image_dir = split_paths(data_root, split)
    data = load_annotation_file(ann_file)
    images = data["images"][:limit] if limit is not None else data["images"]
    names = _category_names(data["categories"])
    # given-visible: the ground truth's categories are handed to the predictor only when they are the
    # model's own; otherwise (COCOA, KINS, class-agnostic) the predictor names each instance itself
    ours = categories_are_ours(data["categories"])
    # end to end, predicted ids are the model's and the truth's another taxonomy's: AP is class-agnostic
    agnostic_ap = protocol == "end-to-end" and not ours
    if match_categories and not ours:
        raise Amodal3dError(f"--match-categories: {ann_file} names its categories in another taxonomy than "
                            f"this model's ({', '.join(CATEGORY_NAMES)}), so predicted and true ids cannot be compared")
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)

    labels_all, rates_all, amodal_all, occluded_all, matched_all, image_ids = [], [], [], [], [], []
    coco_images: list[dict] = []
    gt_amodal_coco, gt_visible_coco, dt_amodal_coco, dt_visible_coco = [], [], [], []
    num_predictions = 0
    predict_seconds = 0.0
    wall_start = time.perf_counter()
    iterator = images
    if progress:
        from tqdm import tqdm

        iterator = tqdm(images, desc=f"evaluate {method}", unit="img", file=sys.stderr)
    for info in iterator:
        path = resolve_image_path(image_dir, info["file_name"], ann_file)
        image = read_image(path)
        h, w = image.shape[:2]
        anns = by_image.get(info["id"], [])

        def stack(key: str, anns=anns, h=h, w=w, path=path) -> np.ndarray:
            if not anns:
                return np.zeros((0, h, w), bool)
            masks = np.stack([decode_rle(a[key]) for a in anns])
            if masks.shape[1:] != (h, w):
                raise DataError(f"{ann_file}: {key} of image {path.name} has size {masks.shape[1:]}, "
                                f"the image {(h, w)}")
            return masks

        gt_amodal, gt_visible = stack("amodal_segm"), stack("visible_segm")
        gt_labels = np.array([a["category_id"] for a in anns], np.int64)
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        rates = np.array([a["occlude_rate"] if "occlude_rate" in a else np.nan for a in anns], np.float64)
        missing = np.isnan(rates)
        if missing.any():
            amodal_area = metrics.mask_areas(gt_amodal[missing])
            rates[missing] = 1.0 - metrics.mask_areas(gt_visible[missing]) / np.maximum(amodal_area, 1)

        given = None
        if protocol == "given-visible":
            keep = ~crowd
            labels = gt_labels[keep] if ours else np.full(int(keep.sum()), UNKNOWN_CATEGORY, np.int64)
            given = GivenVisible(visible_masks=gt_visible[keep], labels=labels, boxes=masks_to_boxes(gt_visible[keep]))
        start = time.perf_counter()
        out = predictor.predict(image, given)
        predict_seconds += time.perf_counter() - start
        out = _check_output(out, h, w, given, str(path))
        pred_amodal = np.asarray(out.amodal_masks, bool)
        pred_visible = np.asarray(out.visible_masks, bool)
        pred_labels = np.asarray(out.labels, np.int64)
        scores = np.asarray(out.scores, np.float64)
        num_predictions += len(pred_labels)

        eval_idx = np.flatnonzero(~crowd)
        if given is not None:
            match = np.arange(len(eval_idx), dtype=np.int64)
            pred_labels = gt_labels[eval_idx]  # scored under the ground truth's own categories
            scores = np.ones(len(match))
        else:
            gt_for_match = (gt_visible if match_on == "visible" else gt_amodal)[eval_idx]
            pr_for_match = pred_visible if match_on == "visible" else pred_amodal
            iou = metrics.mask_iou_matrix(gt_for_match, pr_for_match)
            match = metrics.match_greedy(iou, iou_threshold,
                                         gt_labels[eval_idx] if match_categories else None,
                                         pred_labels if match_categories else None)
        amodal_iou, occluded_iou = metrics.instance_scores(match, gt_amodal[eval_idx], gt_visible[eval_idx],
                                                           pred_amodal)
        labels_all.append(gt_labels[eval_idx])
        rates_all.append(rates[eval_idx])
        amodal_all.append(amodal_iou)
        occluded_all.append(occluded_iou)
        matched_all.append(match >= 0)
        image_id = int(info["id"])
        image_ids.append(np.full(len(eval_idx), image_id, np.int64))

        coco_images.append({"id": image_id, "height": h, "width": w})
        gt_ap_labels = np.ones_like(gt_labels) if agnostic_ap else gt_labels
        pred_ap_labels = np.ones_like(pred_labels) if agnostic_ap else pred_labels
        for i in range(len(anns)):
            common = {"image_id": image_id, "category_id": int(gt_ap_labels[i]), "iscrowd": int(crowd[i])}
            gt_amodal_coco.append({**common, "segmentation": encode_rle(gt_amodal[i])})
            gt_visible_coco.append({**common, "segmentation": encode_rle(gt_visible[i])})
        for j in range(len(pred_labels)):
            common = {"image_id": image_id, "category_id": int(pred_ap_labels[j]), "score": float(scores[j])}
            dt_amodal_coco.append({**common, "segmentation": encode_rle(pred_amodal[j])})
            dt_visible_coco.append({**common, "segmentation": encode_rle(pred_visible[j])})

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    matched = cat(matched_all, bool)
    labels, rates = cat(labels_all, np.int64), cat(rates_all, np.float64)
    amodal, occluded = cat(amodal_all, np.float64), cat(occluded_all, np.float64)
    summary = metrics.summarize(labels, rates, amodal, occluded, names, matched=matched)
    category_ids = [1] if agnostic_ap else list(names)
    amodal_ap = metrics.coco_mask_ap(coco_images, gt_amodal_coco, dt_amodal_coco, category_ids)
    visible_ap = metrics.coco_mask_ap(coco_images, gt_visible_coco, dt_visible_coco, category_ids)
    wall = time.perf_counter() - wall_start
    n = len(images)
    return {
        "method": method,
        "protocol": protocol,
        "split": split,
        "data": str(data_root),
        "num_images": n,
        "num_instances": int(sum(len(x) for x in labels_all)),
        "num_predictions": num_predictions,
        "num_matched": int(matched.sum()),
        "categories": list(names.values()),
        **summary,
        "amodal_ap": amodal_ap,
        "visible_ap": visible_ap,
        "ap_class_agnostic": agnostic_ap,
        "images_per_s": n / predict_seconds if predict_seconds > 0 else None,
        "wall_images_per_s": n / wall if wall > 0 else None,
        "seconds": {"predictor": predict_seconds, "wall": wall},
        "instances": {  # per ground-truth instance (crowd left out), for paired comparisons (compare.py)
            "image_id": cat(image_ids, np.int64).tolist(), "category_id": labels.tolist(),
            "occlude_rate": np.round(rates, 4).tolist(), "amodal_iou": np.round(amodal, 6).tolist(),
            "occluded_iou": np.round(occluded, 6).tolist(), "matched": matched.tolist()},
        "matching": {"on": "identity" if protocol == "given-visible" else match_on,
                     "iou_threshold": iou_threshold,
                     "categories_must_agree": bool(match_categories) and protocol == "end-to-end"},
    }


# ---------------------------------------------------------------- tables

def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100.0 * value:.{digits}f}"


def _columns(results: Sequence[dict]) -> list[str]:
    """Category columns: the union of the results' categories, in first-seen order."""
    seen: dict[str, None] = {}
    for result in results:
        for name in result.get("categories") or list(result.get("per_category", {})):
            seen.setdefault(name, None)
    return list(seen)


def _label(result: dict, mixed_protocols: bool) -> str:
    method = str(result.get("method", "?"))
    return f"{method} ({result.get('protocol', '?')})" if mixed_protocols else method


def format_table(results: Sequence[dict]) -> str:
    """Plain-text table in the paper's layout: one row per result, a column per category + mIoU (x100)."""
    cats = _columns(results)
    mixed = len({r.get("protocol") for r in results}) > 1
    labels = [_label(r, mixed) for r in results]
    first = max([len("method"), *map(len, labels)])
    widths = [max(len(c), 5) for c in cats] + [5]
    header = "  ".join(["method".ljust(first), *(c.rjust(wd) for c, wd in zip([*cats, "mIoU"], widths))])
    lines = [header, "-" * len(header)]
    for label, result in zip(labels, results):
        per = result.get("per_category", {})
        cells = [_pct(per.get(c, {}).get("miou")) for c in cats] + [_pct(result.get("miou"))]
        lines.append("  ".join([label.ljust(first), *(v.rjust(wd) for v, wd in zip(cells, widths))]))
    return "\n".join(lines)


def format_summary(result: dict) -> str:
    """The figures beside the table: occluded mIoU, occlusion bins, AP, counts and speed."""
    ap, vap = result.get("amodal_ap", {}), result.get("visible_ap", {})
    bins = "  ".join(f"{k}: {_pct(v.get('miou'))} (n={v.get('count', 0)})"
                     for k, v in result.get("by_occlusion", {}).items())
    ips, wall = result.get("images_per_s"), result.get("wall_images_per_s")
    return "\n".join([
        f"{result.get('method')} / {result.get('protocol')} / {result.get('split')}: "
        f"{result.get('num_images')} images, {result.get('num_instances')} instances, "
        f"{result.get('num_matched')} matched",
        f"mIoU {_pct(result.get('miou'))}   occluded mIoU {_pct(result.get('occluded_miou'))}   "
        f"instance-averaged mIoU {_pct(result.get('instance_miou'))}",
        f"by occlusion  {bins}",
        f"amodal AP {_pct(ap.get('AP'))}  AP50 {_pct(ap.get('AP50'))}  AP75 {_pct(ap.get('AP75'))}   "
        f"visible AP {_pct(vap.get('AP'))}  AP50 {_pct(vap.get('AP50'))}  AP75 {_pct(vap.get('AP75'))}",
        f"speed {ips or 0:.2f} images/s (predictor), {wall or 0:.2f} images/s (wall)",
    ])


def markdown_table(results: Sequence[dict]) -> str:
    """GitHub Markdown table, one row per result: categories, mIoU, occluded mIoU, amodal AP (all x100)."""
    cats = _columns(results)
    mixed = len({r.get("protocol") for r in results}) > 1
    head = ["Method", *cats, "mIoU", "occluded mIoU", "amodal AP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    for result in results:
        per = result.get("per_category", {})
        cells = [_label(result, mixed), *(_pct(per.get(c, {}).get("miou")) for c in cats),
                 _pct(result.get("miou")), _pct(result.get("occluded_miou")),
                 _pct((result.get("amodal_ap") or {}).get("AP"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
