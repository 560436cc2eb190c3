"""Pure functions on binary masks: COCO RLE, boxes, IoU. Masks are numpy bool arrays (H, W);
boxes are ``xywh`` in pixels (COCO) unless the name says ``xyxy``."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict:
    """Bool mask (H, W) -> COCO RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string/bytes counts, or uncompressed list counts) -> bool mask (H, W)."""
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons (each a flat ``[x0, y0, x1, y1, ...]`` list, >= 3 points) -> bool mask (H, W)."""
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def mask_to_bbox(mask: np.ndarray) -> list[float]:
    """Tight ``xywh`` box of a bool mask (H, W): pixel (r, c) spans [c, c+1) x [r, r+1). Empty -> zeros."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])]


def xywh_to_xyxy(box: list[float] | np.ndarray) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of one shape; 0 when both are empty... by convention 1.0 (they agree)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def box_contains_mask(box_xywh: list[float], mask: np.ndarray, tolerance: float = 1.0) -> bool:
    """Whether every pixel of ``mask`` lies inside ``box_xywh`` (within ``tolerance`` pixels)."""
    if not mask.any():
        return True
    x0, y0, x1, y1 = xywh_to_xyxy(mask_to_bbox(mask))
    bx0, by0, bx1, by1 = xywh_to_xyxy(box_xywh)
    return (x0 >= bx0 - tolerance and y0 >= by0 - tolerance
            and x1 <= bx1 + tolerance and y1 <= by1 + tolerance)
