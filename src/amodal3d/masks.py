"""Pure functions on binary masks: COCO RLE, boxes, IoU. Masks are numpy bool arrays (H, W);
boxes are ``xywh`` in pixels (COCO) unless the name says ``xyxy``.

Every segmentation read from a file is checked here before pycocotools sees it (its C code
segfaults on NaN polygon coordinates, allocates without bound on huge ones and writes past its
buffer on RLE counts longer than the mask): :func:`rle_problem` / :func:`rle_problems`,
:func:`polygon_problem` and :func:`segmentation_problem` return what is wrong (or None);
:func:`decode_rle` and :func:`polygons_to_mask` refuse what they name."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from amodal3d.errors import DataError

POLYGON_MARGIN = 2  # polygon coordinates may lie up to this many image sizes outside the frame
MAX_COUNT_DIGITS = 6  # a compressed count of 7+ characters overflows pycocotools' 32-bit reader
MAX_MASK_PIXELS = 2**31 - 1  # pycocotools counts runs in 32 bits


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _json_type(value: object) -> str:
    """The JSON name of a value's type (for messages)."""
    for kind, name in ((type(None), "null"), (bool, "boolean"), (dict, "object"), ((list, tuple), "list"),
                       (str, "string"), ((int, float), "number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------- compressed RLE counts
def _parse_counts(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths of many compressed counts strings at once (vectorised :func:`rle_counts`):
    (every string's runs, concatenated, int64; each string's first run index, length n + 1).
    Raises ValueError naming the first problem of the batch."""
    lengths = np.fromiter(map(len, strings), np.int64, len(strings))
    char_end = np.cumsum(lengths)
    v = np.frombuffer(b"".join(strings), np.uint8) - np.uint8(48)  # a character below '0' wraps to >= 208
    if v.size == 0:
        return np.zeros(0, np.int64), np.zeros(len(strings) + 1, np.int64)
    if v.max() > 63:
        raise ValueError(f"counts hold a character outside '0'..'o' ({chr((int(v[v > 63][0]) + 48) % 256)!r})")
    last = v < 32  # the last character of a number (no 0x20 "more" bit)
    if not last[char_end[lengths > 0] - 1].all():
        raise ValueError("counts end inside a number (a truncated string)")
    ends = np.flatnonzero(last)
    digits = np.diff(ends, prepend=-1)
    if digits.max() > MAX_COUNT_DIGITS:
        raise ValueError(f"counts hold a number of more than {MAX_COUNT_DIGITS} characters (over 2**29)")
    low = (v & 31).astype(np.int32)
    # Horner from each number's last character down: its 4 low bits, minus 16 when the sign bit is set
    values = (low[ends] & 15) - (low[ends] & 16)
    for j in range(1, MAX_COUNT_DIGITS):
        longer = np.flatnonzero(digits > j)
        if not longer.size:
            break
        values[longer] = (values[longer] << 5) | low[ends[longer] - j]
    runs = values.astype(np.int64)
    # numbers per string, and each number's index m within its string
    before = np.concatenate(([0], np.cumsum(last, dtype=np.int64)))
    per_string = before[char_end] - before[char_end - lengths]
    offsets = np.concatenate(([0], np.cumsum(per_string)))
    m = np.arange(len(runs)) - np.repeat(offsets[:-1], per_string)
    # from the fourth run on (m > 2), a number is the run minus the run two before: run m is the sum of
    # the numbers m, m-2, ... down to 1 (odd m) or 2 (even m); run 0 stands alone
    odd = (m & 1).astype(bool)
    for chain in (odd, ~odd & (m >= 2)):
        total = np.cumsum(np.where(chain, runs, 0))
        base = np.concatenate(([0], total))[offsets[:-1]]
        runs = np.where(chain, total - np.repeat(base, per_string), runs)
    return runs, offsets


def rle_counts(counts: str | bytes) -> np.ndarray:
    """Run lengths (int64) of a COCO compressed RLE counts string, read as pycocotools' ``rleFrString``.

    The scheme (LEB128-like, in printable ASCII): run lengths alternate 0s and 1s in column-major
    order, starting with 0s. From the fourth run on (index m > 2), the number stored is the run minus
    the run two before. Each number is written 5 bits at a time, least significant first, one
    character per group: ``chr(48 + group)``, with bit 0x20 set when another character follows; bit
    0x10 of the last character is the sign (the number is sign-extended from 5 x its characters).
    Raises ValueError for a character outside '0'..'o', a string ending inside a number and numbers
    of more than :data:`MAX_COUNT_DIGITS` characters (pycocotools would overflow). Negative runs
    are returned as they are (see :func:`rle_problem`)."""
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("counts hold a character outside '0'..'o' (non-ASCII)") from None
    return _parse_counts([bytes(counts)])[0]


def _runs_problem(runs: Sequence[int], height: int, width: int) -> str | None:
    """What is wrong with decoded run lengths of an ``height`` x ``width`` mask, or None (a list is
    summed in Python integers: a JSON run length may be any size)."""
    negative = [i for i, run in enumerate(runs.tolist() if isinstance(runs, np.ndarray) else runs) if run < 0]
    if negative:
        return f"counts hold a negative run ({int(runs[negative[0]])} at run {negative[0] + 1})"
    total = int(runs.sum()) if isinstance(runs, np.ndarray) else sum(int(run) for run in runs)
    if total != height * width:
        return (f"counts sum to {total} pixels, not {height}x{width} = {height * width} "
                f"({'a truncated' if total < height * width else 'an overlong'} mask)")
    return None


def _rle_structure(rle: object, size: tuple[int, int] | None) -> tuple[str | None, bytes | None]:
    """(problem, compressed counts left to check) of one RLE; list counts are checked here."""
    if not isinstance(rle, dict):
        return f"is not a COCO RLE (a {_json_type(rle)}, not an object with size and counts)", None
    missing = [k for k in ("size", "counts") if k not in rle]
    if missing:
        return f"lacks {' and '.join(repr(k) for k in missing)}", None
    shape = rle["size"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(_is_int(s) and s >= 0 for s in shape)):
        return f"size {_short(shape)} is not two non-negative integers [height, width]", None
    height, width = int(shape[0]), int(shape[1])
    if size is not None and [height, width] != [int(size[0]), int(size[1])]:
        return f"size {[height, width]} disagrees with the image size {[int(size[0]), int(size[1])]}", None
    if height * width > MAX_MASK_PIXELS:
        return f"size {[height, width]} is over {MAX_MASK_PIXELS:,} pixels", None
    counts = rle["counts"]
    if isinstance(counts, list):
        bad = [c for c in counts if not _is_int(c)]
        if bad:
            return f"counts list holds {_short(bad[0])}, not an integer run length", None
        return _runs_problem(counts, height, width), None
    if isinstance(counts, str):
        try:
            return None, counts.encode("ascii")
        except UnicodeEncodeError:
            return "counts hold a character outside '0'..'o' (non-ASCII)", None
    if isinstance(counts, bytes):
        return None, counts
    return f"counts is {_short(counts)}, neither a compressed string nor a list of run lengths", None


def rle_problems(items: Sequence[tuple[object, tuple[int, int] | None]]) -> list[str | None]:
    """What is wrong with each ``(rle, (height, width) or None)``, or None: not an object with
    ``size`` and ``counts``; a size that is not two non-negative integers or disagrees with the given
    image size; counts neither a compressed string nor a list of integers; a malformed string (see
    :func:`rle_counts`); a negative run; runs that do not sum to height x width. Problems read after
    the RLE's name (``"visible_segm " + problem``). Compressed strings are parsed in one vectorised
    batch (about 20 us an RLE: for a whole split, about as long as reading its JSON)."""
    problems: list[str | None] = [None] * len(items)
    pending: list[tuple[int, bytes, int, int]] = []
    for index, (rle, size) in enumerate(items):
        problem, compressed = _rle_structure(rle, size)
        if problem is not None:
            problems[index] = problem
        elif compressed is not None:
            pending.append((index, compressed, int(rle["size"][0]), int(rle["size"][1])))
    if not pending:
        return problems
    try:
        runs, offsets = _parse_counts([p[1] for p in pending])
        ok = True
    except ValueError:
        ok = False
    if ok and (runs < 0).any():
        ok = False
    if ok:
        sums = np.r_[0, np.cumsum(runs)][offsets]
        sums = sums[1:] - sums[:-1]
        for (index, _, height, width), total in zip(pending, sums.tolist()):
            if total != height * width:
                problems[index] = _runs_problem([total], height, width)
        return problems
    for index, compressed, height, width in pending:  # a malformed string among them: find which
        try:
            problems[index] = _runs_problem(rle_counts(compressed), height, width)
        except ValueError as error:
            problems[index] = str(error)
    return problems


def rle_problem(rle: object, size: tuple[int, int] | None = None) -> str | None:
    """What is wrong with one COCO RLE (see :func:`rle_problems`), or None."""
    return rle_problems([(rle, size)])[0]


# --------------------------------------------------------------------------------------------- polygons
def _polygon_list(value: list) -> list:
    """A COCO polygon list, or one flat polygon as a list of one."""
    return value if any(isinstance(p, (list, tuple)) for p in value) else [value]


def polygon_problem(value: object, height: int, width: int) -> str | None:
    """What is wrong with COCO polygons (a list of flat ``[x0, y0, x1, y1, ...]`` lists, or one flat
    list) on an ``height`` x ``width`` image, or None. Coordinates must be numbers (not strings,
    booleans or null), finite, and within :data:`POLYGON_MARGIN` image sizes of the frame (x and y in
    [-2 S, 3 S], S the larger of H and W); out-of-frame coordinates inside that margin are legal (the
    mask is clipped); beyond it pycocotools would allocate without bound or crash. Each polygon needs
    an even number of coordinates and at least 3 points."""
    if not isinstance(value, (list, tuple)) or not value:
        return "segmentation is an empty polygon list" if isinstance(value, (list, tuple)) else \
            "segmentation is neither polygons nor RLE"
    side = max(height, width, 1)  # the margin is in the image's larger side (a thin image keeps a sane one)
    x_range = y_range = (-POLYGON_MARGIN * side, (POLYGON_MARGIN + 1) * side)
    for poly in _polygon_list(value):
        if not isinstance(poly, (list, tuple)):
            return f"a polygon that is {_short(poly)}, not a list of coordinates"
        if len(poly) % 2:
            return f"a polygon with an odd number of coordinates ({len(poly)})"
        if len(poly) < 6:
            return f"a polygon with fewer than 3 points ({len(poly) // 2})"
        bad = [c for c in poly if not _is_number(c)]
        if bad:
            return f"a polygon coordinate that is not a number ({_short(bad[0])})"
        for axis, low, high, name in ((0, *x_range, "x"), (1, *y_range, "y")):
            for c in poly[axis::2]:
                try:
                    c = float(c)
                except OverflowError:  # an integer beyond float
                    c = math.inf
                if not math.isfinite(c):
                    return f"a polygon coordinate that is NaN or infinite ({c})"
                if not low <= c <= high:
                    return (f"a polygon coordinate {name} = {c:g} far outside the {width}x{height} image "
                            f"({name} must lie in [{low}, {high}])")
    return None


def segmentation_problem(value: object, height: int, width: int) -> str | None:
    """What is wrong with a COCO segmentation (polygons or RLE) of an ``height`` x ``width`` image."""
    if isinstance(value, dict):
        problem = rle_problem(value, (height, width))
        return None if problem is None else f"RLE {problem}"
    if isinstance(value, (list, tuple)):
        return polygon_problem(value, height, width)
    return "segmentation is neither polygons nor RLE"


def segmentation_to_mask(value: dict | list, height: int, width: int, check: bool = True) -> np.ndarray:
    """COCO segmentation (polygons or RLE) -> bool mask (H, W); DataError for what
    :func:`segmentation_problem` names (unless ``check=False``: checked already)."""
    problem = segmentation_problem(value, height, width) if check else None
    if problem is not None:
        raise DataError(f"invalid segmentation: {problem}")
    if isinstance(value, dict):
        return decode_rle(value, check=False)
    return polygons_to_mask(value, height, width, check=False)


# ------------------------------------------------------------------------------------------ RLE, masks
def encode_rle(mask: np.ndarray) -> dict:
    """Bool mask (H, W) -> COCO RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict, check: bool = True) -> np.ndarray:
    """COCO RLE (compressed string/bytes counts, or uncompressed list counts) -> bool mask (H, W).

    Checked first (:func:`rle_problem`; DataError naming the problem) unless ``check=False``, for
    RLEs checked already (as :func:`amodal3d.data.dataset.load_annotation_file` checks every mask)."""
    if check:
        problem = rle_problem(rle)
        if problem is not None:
            raise DataError(f"invalid COCO RLE: {problem}")
    height, width = int(rle["size"][0]), int(rle["size"][1])
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": [int(c) for c in rle["counts"]]},
                                     height, width)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": [height, width], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def polygons_to_mask(polygons: list, height: int, width: int, check: bool = True) -> np.ndarray:
    """COCO polygons (each a flat ``[x0, y0, x1, y1, ...]`` list, >= 3 points; or one flat list) ->
    bool mask (H, W). Checked first (:func:`polygon_problem`) unless ``check=False``."""
    if check:
        problem = polygon_problem(polygons, height, width)
        if problem is not None:
            raise DataError(f"invalid polygon: {problem}")
    rles = mask_utils.frPyObjects([[float(c) for c in p] for p in _polygon_list(polygons)], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (pixel (r, c) spans [c, c+1) x [r, r+1)) of masks (N, H, W) -> (N, 4) float32.
    Empty masks give zeros. The one mask-to-box rule (:func:`mask_to_bbox`, :func:`amodal3d.roi.mask_boxes`)."""
    masks = np.asarray(masks, bool)
    boxes = np.zeros((len(masks), 4), np.float32)
    if len(masks) == 0:
        return boxes
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    present = rows.any(axis=1)
    h, w = masks.shape[1:]
    r0, r1 = rows.argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)
    c0, c1 = cols.argmax(axis=1), w - cols[:, ::-1].argmax(axis=1)
    boxes[present] = np.stack([c0, r0, c1, r1], axis=1)[present]
    return boxes


def mask_to_bbox(mask: np.ndarray) -> list[float]:
    """Tight ``xywh`` box of a bool mask (H, W) (COCO's ``bbox``; :func:`masks_to_boxes`). Empty -> zeros."""
    x0, y0, x1, y1 = (float(v) for v in masks_to_boxes(np.asarray(mask, bool)[None])[0])
    return [x0, y0, x1 - x0, y1 - y0]


def xywh_to_xyxy(box: list[float] | np.ndarray) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


# The IoU of two empty masks when an IoU is a score (docs/metrics.md, "IoU"): they agree. Matching, where
# an empty mask never matches, takes 0 instead (:func:`amodal3d.evaluation.metrics.mask_iou_matrix`).
EMPTY_IOU = 1.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of one shape, scored as the metrics score (two empty masks: ``EMPTY_IOU``;
    :func:`amodal3d.evaluation.metrics.paired_iou` for stacks)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return EMPTY_IOU
    return float(np.logical_and(a, b).sum() / union)


def box_contains_mask(box_xywh: list[float], mask: np.ndarray, tolerance: float = 1.0) -> bool:
    """Whether every pixel of ``mask`` lies inside ``box_xywh`` (within ``tolerance`` pixels)."""
    if not mask.any():
        return True
    x0, y0, x1, y1 = xywh_to_xyxy(mask_to_bbox(mask))
    bx0, by0, bx1, by1 = xywh_to_xyxy(box_xywh)
    return (x0 >= bx0 - tolerance and y0 >= by0 - tolerance
            and x1 <= bx1 + tolerance and y1 <= by1 + tolerance)
