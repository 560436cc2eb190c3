"""``amodal3d predict``: run the pipeline over image files, writing COCO results, overlays and meshes.

One image at a time (memory stays flat over long folders); an unreadable image is reported by name
and the others still run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from amodal3d import CATEGORY_NAMES
from amodal3d.data.dataset import read_image
from amodal3d.data.readers import segmentation_mask
from amodal3d.data.schema import categories_are_ours
from amodal3d.errors import DataError
from amodal3d.evaluation.predictor import UNKNOWN_CATEGORY, GivenVisible
from amodal3d.io import atomic_save_image, atomic_write_bytes, atomic_write_json
from amodal3d.masks import encode_rle, mask_to_bbox, xywh_to_xyxy
from amodal3d.visualize import overlay


def load_visible_json(path: str | Path) -> dict[str, list[dict]]:
    """COCO JSON of visible masks -> annotations per image file name (basename). Category ids are kept
    when the file's ``categories`` name them as this project does (:func:`categories_are_ours`);
    otherwise (COCO, KINS, class-agnostic, none) each becomes ``UNKNOWN_CATEGORY``, for step 1's crop
    head to name."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{path}: expected a COCO file with 'images' and 'annotations'")
    names = {im["id"]: Path(im["file_name"]).name for im in data["images"]}
    per_file: dict[str, list[dict]] = {name: [] for name in names.values()}
    ours = categories_are_ours(data.get("categories"))
    for ann in data["annotations"]:
        if ann.get("image_id") not in names:
            raise DataError(f"{path}: annotation {ann.get('id')} refers to unknown image {ann.get('image_id')}")
        per_file[names[ann["image_id"]]].append(ann if ours else {**ann, "category_id": UNKNOWN_CATEGORY})
    return per_file


def given_from_annotations(anns: list[dict], height: int, width: int, source: str) -> GivenVisible:
    masks = [segmentation_mask(ann.get("visible_segm", ann.get("segmentation")), height, width,
                               f"{source}: annotation {ann.get('id')}") for ann in anns]
    visible = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    boxes = np.array([xywh_to_xyxy(mask_to_bbox(m)) for m in visible], np.float32).reshape(-1, 4)
    labels = np.array([int(a.get("category_id", UNKNOWN_CATEGORY)) for a in anns], np.int64)
    return GivenVisible(visible, labels, boxes)


def predict_files(paths: list[Path], out: Path, weights: str = "cpu-small", mode: str = "a3d",
                  device: str = "cpu", score_threshold: float | None = None, visible_json: str | None = None,
                  meshes: str = "none", overlays: bool = True, progress: bool = True,
                  occluder_constraint: bool = True, fit_steps: int | None = None, crop_head: bool = True,
                  detector_amodal: bool = True, mirrored_detections: bool = True) -> dict:
    from amodal3d.pipeline import DEFAULT_SCORE_THRESHOLD, AmodalSegmenter

    score_threshold = DEFAULT_SCORE_THRESHOLD if score_threshold is None else score_threshold

    segmenter = AmodalSegmenter.from_pretrained(weights, mode=mode, device=device, score_threshold=score_threshold,
                                                occluder_constraint=occluder_constraint, fit_steps=fit_steps,
                                                crop_head=crop_head, detector_amodal=detector_amodal,
                                                mirrored_detections=mirrored_detections)
    given_by_file = load_visible_json(visible_json) if visible_json else None
    out.mkdir(parents=True, exist_ok=True)
    results, failed, done = [], [], 0
    for image_id, path in enumerate(tqdm(paths, desc="predict", unit="img", disable=not progress), start=1):
        try:
            image = read_image(path)
            given = None
            if given_by_file is not None:
                if path.name not in given_by_file:
                    raise DataError(f"{path}: no entry in {visible_json}")
                given = given_from_annotations(given_by_file[path.name], *image.shape[:2], str(visible_json))
            instances = segmenter.predict(image, given)
        except DataError as error:
            message = str(error)
            failed.append((str(path), message if message.startswith(str(path)) else f"{path}: {message}"))
            continue
        done += 1
        for k in range(len(instances.labels)):
            amodal, visible = instances.amodal_masks[k], instances.visible_masks[k]
            results.append({"image_id": image_id, "file_name": str(path), "category_id": int(instances.labels[k]),
                            "score": round(float(instances.scores[k]), 5), "bbox": mask_to_bbox(amodal),
                            "segmentation": encode_rle(amodal), "visible_segmentation": encode_rle(visible),
                            "viewpoint": instances.extras["viewpoints"][k]})
            if meshes != "none":
                import trimesh

                verts, faces = instances.extras["meshes"][k]
                blob = trimesh.Trimesh(verts, faces, process=False).export(file_type=meshes)
                atomic_write_bytes(out / "meshes" / f"{path.stem}_{k}.{meshes}",
                                   blob if isinstance(blob, bytes) else blob.encode())
        if overlays:
            labels = [f"{CATEGORY_NAMES[int(c) - 1] if 0 < int(c) <= len(CATEGORY_NAMES) else int(c)} {s:.2f}"
                      for c, s in zip(instances.labels, instances.scores)]
            atomic_save_image(overlay(image, instances.visible_masks, instances.amodal_masks, labels),
                              out / "overlays" / f"{path.stem}.png")
    atomic_write_json(out / "results.json", results)
    return {"images": done, "instances": len(results), "failed": failed}
