"""Property-based tests (hypothesis) of the pure functions: masks and RLE, metrics and matching, the
convex-hull baseline, camera geometry and the soft rasteriser. Each property is checked against an
independent reference (plain loops, numpy broadcasting, pycocotools, Rodrigues, the dense renderer)
or an invariance (round trip, symmetry, equivariance, monotonicity)."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils
from scipy.spatial import Delaunay, QhullError

from amodal3d import geometry
from amodal3d.evaluation import metrics
from amodal3d.evaluation.baselines import convex_hull_mask
from amodal3d.masks import (
    box_contains_mask,
    decode_rle,
    encode_rle,
    mask_iou,
    mask_to_bbox,
    masks_to_boxes,
    polygons_to_mask,
    xywh_to_xyxy,
)
from amodal3d.render import (
    ViewpointCamera,
    icosphere,
    mirror_index,
    project_full,
    project_viewpoint,
    rasterize_hard,
    render_soft_silhouette,
    soft_margin,
    soft_silhouette_dense,
    symmetrize,
)

F64 = torch.float64
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHEAP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 20), st.integers(1, 20))


def bool_arrays(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Bool arrays of ``shape``: hypothesis-built (mostly constant, shrinkable) or i.i.d. pixels of a
    random density from a seeded generator (varied, dense)."""
    density = st.one_of(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]), st.floats(0.0, 1.0))
    seeded = st.tuples(st.integers(0, 2**32 - 1), density).map(
        lambda sd: np.random.default_rng(sd[0]).random(shape) < sd[1])
    return st.one_of(arrays(bool, shape, elements=st.booleans()), seeded)


@st.composite
def masks(draw, max_side: int = 20) -> np.ndarray:
    """A bool mask of random shape (1..max_side each side): empty, full, sparse or dense."""
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return draw(bool_arrays((h, w)))


@st.composite
def mask_stacks(draw, max_n: int = 5, max_side: int = 12, min_n: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two stacks (N, H, W) and (M, H, W) of one raster size (N, M may be 0 unless ``min_n``)."""
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    a = draw(bool_arrays((draw(st.integers(min_n, max_n)), h, w)))
    b = draw(bool_arrays((draw(st.integers(min_n, max_n)), h, w)))
    return a, b


def angles(lo: float = -720.0, hi: float = 720.0) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def runs_rle(mask: np.ndarray) -> dict:
    """Reference uncompressed COCO RLE: run lengths of the column-major mask, starting with zeros."""
    flat = mask.ravel(order="F").tolist()
    counts, value, run = [], False, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def wrap_deg(a: np.ndarray | float) -> np.ndarray:
    """Angle difference wrapped into [-180, 180)."""
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


# ------------------------------------------------------------------------------------------------
# masks.py: RLE, boxes, polygons, IoU
# ------------------------------------------------------------------------------------------------

@CHEAP
@given(masks())
@example(np.zeros((5, 7), bool))
@example(np.ones((5, 7), bool))
@example(np.ones((1, 9), bool))
@example(np.array([[False, True, False, True]]))
@example(np.ones((9, 1), bool))
def test_rle_round_trip_and_area(mask):
    """mask -> RLE -> mask is exact; the RLE is JSON-ready, sized (H, W), and its area is the mask sum."""
    rle = encode_rle(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
    back = decode_rle(rle)
    assert back.dtype == bool and back.shape == mask.shape
    np.testing.assert_array_equal(back, mask)
    coco = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    assert int(mask_utils.area(coco)) == int(mask.sum())
    np.testing.assert_array_equal(decode_rle(coco), mask)            # bytes counts
    # uncompressed counts (a plain-loop reference encoding) decode to the same mask
    np.testing.assert_array_equal(decode_rle(runs_rle(mask)), mask)
    assert sum(runs_rle(mask)["counts"]) == mask.size


@CHEAP
@given(masks())
@example(np.zeros((3, 4), bool))
@example(np.ones((1, 6), bool))
def test_bbox_contains_mask_and_is_tight(mask):
    """The xywh box holds every pixel, each side touches one, and it agrees with pycocotools and
    ``masks_to_boxes``; empty masks give zeros."""
    x, y, w, h = mask_to_bbox(mask)
    assert xywh_to_xyxy([x, y, w, h]) == [x, y, x + w, y + h]
    if not mask.any():
        assert [x, y, w, h] == [0.0, 0.0, 0.0, 0.0]
    else:
        rr, cc = np.nonzero(mask)
        assert all(v == int(v) for v in (x, y, w, h)) and w >= 1 and h >= 1
        assert (cc >= x).all() and (cc + 1 <= x + w).all() and (rr >= y).all() and (rr + 1 <= y + h).all()
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        assert mask[:, x0].any() and mask[:, x1 - 1].any() and mask[y0].any() and mask[y1 - 1].any()
        assert not mask[:y0].any() and not mask[y1:].any() and not mask[:, :x0].any() and not mask[:, x1:].any()
        assert box_contains_mask([x, y, w, h], mask, tolerance=0.0)
        # shrinking any side by more than the tolerance loses a pixel
        for shrunk in ([x + 1.5, y, w - 1.5, h], [x, y + 1.5, w, h - 1.5], [x, y, w - 1.5, h], [x, y, w, h - 1.5]):
            assert not box_contains_mask(shrunk, mask, tolerance=1.0)
    coco = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))
    np.testing.assert_array_equal(coco, [x, y, w, h])
    np.testing.assert_array_equal(masks_to_boxes(mask[None])[0], xywh_to_xyxy([x, y, w, h]))


@st.composite
def int_rects(draw, height: int, width: int) -> tuple[int, int, int, int]:
    x0 = draw(st.integers(0, width - 1))
    y0 = draw(st.integers(0, height - 1))
    return x0, y0, draw(st.integers(x0 + 1, width)), draw(st.integers(y0 + 1, height))


@FAST
@given(st.data(), shapes)
def test_integer_rectangle_polygon_box_round_trip(data, shape):
    """An integer axis-aligned rectangle polygon rasterises to exactly its pixels [x0, x1) x [y0, y1),
    in either winding and from any start corner, and ``mask_to_bbox`` gives the rectangle back."""
    h, w = shape
    x0, y0, x1, y1 = data.draw(int_rects(h, w))
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    start = data.draw(st.integers(0, 3))
    corners = corners[start:] + corners[:start]
    if data.draw(st.booleans()):
        corners = corners[::-1]
    mask = polygons_to_mask([[c for xy in corners for c in xy]], h, w)
    expected = np.zeros((h, w), bool)
    expected[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(mask, expected)
    assert mask_to_bbox(mask) == [x0, y0, x1 - x0, y1 - y0]


@FAST
@given(st.data(), st.tuples(st.integers(2, 16), st.integers(2, 16)))
def test_polygons_union_and_bounds(data, shape):
    """Several polygons rasterise to the union of each one alone, inside the polygons' bounding box."""
    h, w = shape
    coord = st.floats(0.0, float(max(h, w)), allow_nan=False, width=32)
    points = st.lists(st.tuples(coord, coord), min_size=3, max_size=6)
    polys = [[c for xy in poly for c in xy] for poly in data.draw(st.lists(points, min_size=1, max_size=3))]
    union = polygons_to_mask(polys, h, w)
    singles = [polygons_to_mask([p], h, w) for p in polys]
    np.testing.assert_array_equal(union, np.logical_or.reduce(singles))
    for p, m in zip(polys, singles):
        xs, ys = p[0::2], p[1::2]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        assert box_contains_mask(box, m, tolerance=1.0)


@CHEAP
@given(mask_stacks(max_n=1, min_n=1))
def test_mask_iou_pixelwise(stacks):
    """``mask_iou`` is |a & b| / |a | b| counted pixel by pixel (1 for two empty masks), symmetric."""
    a, b = stacks[0][0], stacks[1][0]
    inter = sum(1 for x, y in zip(a.ravel().tolist(), b.ravel().tolist()) if x and y)
    union = sum(1 for x, y in zip(a.ravel().tolist(), b.ravel().tolist()) if x or y)
    expected = 1.0 if union == 0 else inter / union
    assert mask_iou(a, b) == expected == mask_iou(b, a)
    assert 0.0 <= mask_iou(a, b) <= 1.0
    assert mask_iou(a, a) == 1.0


# ------------------------------------------------------------------------------------------------
# evaluation/metrics.py
# ------------------------------------------------------------------------------------------------

@CHEAP
@given(mask_stacks(), st.sampled_from([0.0, 1.0, 0.5]))
def test_iou_matrix_reference_symmetry_and_bounds(stacks, empty):
    """IoU matrix = slow broadcast reference; iou(a, b) == iou(b, a).T; in [0, 1]; 1 on the diagonal
    of non-empty masks; ``empty`` only where both masks are empty."""
    a, b = stacks
    m = metrics.mask_iou_matrix(a, b, empty=empty)
    assert m.shape == (len(a), len(b)) and m.dtype == np.float64
    inter = (a[:, None] & b[None]).sum(axis=(2, 3))
    union = (a[:, None] | b[None]).sum(axis=(2, 3))
    ref = np.where(union > 0, inter / np.maximum(union, 1), empty)
    np.testing.assert_allclose(m, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(metrics.mask_iou_matrix(b, a, empty=empty), m.T, rtol=0, atol=0)
    assert ((m >= 0) & (m <= 1)).all()
    np.testing.assert_array_equal(metrics.mask_areas(a), a.sum(axis=(1, 2)))
    if len(a):
        self_iou = np.diag(metrics.mask_iou_matrix(a, a, empty=empty))
        nonempty = a.reshape(len(a), -1).any(1)
        assert (self_iou[nonempty] == 1.0).all() and (self_iou[~nonempty] == empty).all()


@CHEAP
@given(mask_stacks(), st.sampled_from([0.0, 1.0]))
def test_paired_iou_is_the_matrix_diagonal(stacks, empty):
    """Row-wise IoU equals the diagonal of the IoU matrix and ``mask_iou`` per pair."""
    a, b = stacks
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    p = metrics.paired_iou(a, b, empty=empty)
    assert p.shape == (n,) and p.dtype == np.float64
    np.testing.assert_allclose(p, np.diag(metrics.mask_iou_matrix(a, b, empty=empty)), rtol=0, atol=1e-12)
    if empty == 1.0:
        np.testing.assert_allclose(p, [mask_iou(x, y) for x, y in zip(a, b)], rtol=0, atol=1e-12)


def greedy_reference(iou: np.ndarray, threshold: float, gl: np.ndarray | None, pl: np.ndarray | None
                     ) -> np.ndarray:
    """Plain-loop greedy matching: pairs sorted by (-iou, gt, pred), take when both sides are free."""
    g, p = iou.shape
    pairs = sorted((-float(iou[r, c]), r, c) for r in range(g) for c in range(p)
                   if iou[r, c] >= threshold and (gl is None or pl is None or gl[r] == pl[c]))
    match, used = [-1] * g, set()
    for _, r, c in pairs:
        if match[r] < 0 and c not in used:
            match[r] = c
            used.add(c)
    return np.array(match, np.int64)


iou_values = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0.0, 1.0))


@CHEAP
@given(st.data(), st.integers(0, 6), st.integers(0, 6), st.floats(0.05, 1.0), st.booleans())
def test_match_greedy_properties(data, g, p, threshold, use_labels):
    """Greedy matching equals a plain-loop reference (ties included), is one-to-one, pairs only
    ``iou >= threshold`` with equal labels, and is maximal (no free pair above the threshold)."""
    iou = data.draw(arrays(np.float64, (g, p), elements=iou_values))
    gl = data.draw(arrays(np.int64, (g,), elements=st.integers(0, 2))) if use_labels else None
    pl = data.draw(arrays(np.int64, (p,), elements=st.integers(0, 2))) if use_labels else None
    match = metrics.match_greedy(iou, threshold, gt_labels=gl, pred_labels=pl)
    assert match.shape == (g,) and match.dtype == np.int64
    np.testing.assert_array_equal(match, greedy_reference(iou, threshold, gl, pl))
    taken = match[match >= 0]
    assert len(set(taken.tolist())) == len(taken) and (taken < p).all()
    for r, c in enumerate(match.tolist()):
        if c >= 0:
            assert iou[r, c] >= threshold
            if use_labels:
                assert gl[r] == pl[c]
    free_pred = np.setdiff1d(np.arange(p), taken)
    for r in np.flatnonzero(match < 0):
        for c in free_pred:
            assert iou[r, c] < threshold or (use_labels and gl[r] != pl[c])


@FAST
@given(st.data(), mask_stacks(max_n=4, max_side=8))
def test_instance_scores_match_paired_reference(data, stacks):
    """Per-instance scores: 0 for unmatched instances, otherwise the IoU of the matched pair (amodal)
    and of the parts outside the visible mask (occluded); all in [0, 1]."""
    gt_amodal, pred = stacks
    g, p = len(gt_amodal), len(pred)
    gt_visible = gt_amodal & data.draw(bool_arrays(gt_amodal.shape))
    match = metrics.match_greedy(metrics.mask_iou_matrix(gt_amodal, pred), 0.3)
    amodal, occluded = metrics.instance_scores(match, gt_amodal, gt_visible, pred)
    assert amodal.shape == occluded.shape == (g,)
    assert ((amodal >= 0) & (amodal <= 1)).all() and ((occluded >= 0) & (occluded <= 1)).all()
    for i in range(g):
        if match[i] < 0:
            assert amodal[i] == 0.0 and occluded[i] == 0.0
        else:
            pa = pred[match[i]]
            assert amodal[i] == mask_iou(pa, gt_amodal[i])
            assert occluded[i] == mask_iou(pa & ~gt_visible[i], gt_amodal[i] & ~gt_visible[i])
    assert p >= (match >= 0).sum()


@CHEAP
@given(arrays(np.float64, st.integers(0, 30), elements=st.one_of(
    st.floats(0.0, 1.0), st.sampled_from([0.0, 0.05, 0.25, 0.5, 1.0]))))
def test_occlusion_bin_puts_each_rate_in_its_interval(rates):
    """Bin ``i`` holds exactly the rates in [lo_i, hi_i) (the last bin closed at 1)."""
    bins = metrics.occlusion_bin(rates)
    assert bins.shape == rates.shape and ((bins >= 0) & (bins < len(metrics.OCCLUSION_BINS))).all()
    last = len(metrics.OCCLUSION_BINS) - 1
    for r, b in zip(rates.tolist(), bins.tolist()):
        lo, hi = metrics.OCCLUSION_BINS[b]
        assert lo <= r and (r < hi or (b == last and r <= hi))


@st.composite
def scored_instances(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 25))
    unit = st.floats(0.0, 1.0)
    return (draw(arrays(np.int64, (n,), elements=st.integers(1, 4))), draw(arrays(np.float64, (n,), elements=unit)),
            draw(arrays(np.float64, (n,), elements=unit)), draw(arrays(np.float64, (n,), elements=unit)))


@FAST
@given(scored_instances())
def test_category_means_and_summarize_match_loops(inst):
    """Per-category means and the summary equal plain-loop references; values in [0, 1] or None;
    the occlusion bins partition the instances."""
    labels, rate, amodal, occluded = inst
    n = len(labels)
    groups: dict[int, list[float]] = {}
    for lab, v in zip(labels.tolist(), amodal.tolist()):
        groups.setdefault(lab, []).append(v)
    means = metrics.category_means(amodal, labels)
    assert set(means) == set(groups)
    for lab, vals in groups.items():
        assert means[lab][1] == len(vals)
        assert math.isclose(means[lab][0], sum(vals) / len(vals), rel_tol=1e-12, abs_tol=1e-15)
    s = metrics.summarize(labels, rate, amodal, occluded, category_names={1: "a", 2: "b", 3: "c", 4: "d"})
    if n == 0:
        assert s["miou"] is None and s["instance_miou"] is None and s["occluded_miou"] is None
    else:
        ref = sum(sum(v) / len(v) for v in groups.values()) / len(groups)
        assert math.isclose(s["miou"], ref, rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(s["instance_miou"], float(amodal.mean()), rel_tol=1e-12, abs_tol=1e-15)
    occ = rate >= metrics.OCCLUDED_MIN_RATE
    assert (s["occluded_miou"] is None) == (not occ.any())
    assert sum(b["count"] for b in s["by_occlusion"].values()) == n
    assert sorted(s["per_category"]) == ["a", "b", "c", "d"]
    for name, lab in zip("abcd", range(1, 5)):
        entry = s["per_category"][name]
        assert entry["count"] == int((labels == lab).sum())
        assert entry["occluded_count"] == int(((labels == lab) & occ).sum())
    values = [s["miou"], s["occluded_miou"], s["instance_miou"]]
    values += [e["miou"] for e in s["per_category"].values()] + [e["occluded_miou"] for e in s["per_category"].values()]
    values += [b["miou"] for b in s["by_occlusion"].values()]
    assert all(v is None or -1e-12 <= v <= 1 + 1e-12 for v in values)


# ------------------------------------------------------------------------------------------------
# evaluation/baselines.py: boxes and convex hull
# ------------------------------------------------------------------------------------------------

@CHEAP
@given(mask_stacks(max_n=4, max_side=15))
def test_masks_to_boxes_matches_mask_to_bbox(stacks):
    """Batched xyxy boxes equal the per-mask xywh boxes converted; float32, (N, 4)."""
    a, _ = stacks
    boxes = masks_to_boxes(a)
    assert boxes.shape == (len(a), 4) and boxes.dtype == np.float32
    for m, box in zip(a, boxes):
        ref = xywh_to_xyxy(mask_to_bbox(m)) if m.any() else [0.0, 0.0, 0.0, 0.0]
        np.testing.assert_array_equal(box, ref)


def hull_reference(mask: np.ndarray) -> np.ndarray | None:
    """Pixels whose centre is inside the Delaunay triangulation of the mask's pixels (None if flat)."""
    pts = np.argwhere(mask).astype(float)
    grid = np.argwhere(np.ones_like(mask)).astype(float)
    try:
        return (Delaunay(pts).find_simplex(grid, tol=1e-9) >= 0).reshape(mask.shape)
    except QhullError:
        return None


def segment_reference(mask: np.ndarray) -> np.ndarray:
    """Collinear pixels: every pixel centre on the segment between the two extreme pixel centres."""
    pts = np.argwhere(mask)
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    p0, p1 = pts[order[0]], pts[order[-1]]
    out = np.zeros_like(mask)
    g = math.gcd(abs(int(p1[0] - p0[0])), abs(int(p1[1] - p0[1])))
    for k in range(g + 1):
        r, c = p0 + (p1 - p0) * k // max(g, 1)
        out[r, c] = True
    return out


@FAST
@given(masks(max_side=14))
@example(np.eye(6, dtype=bool)[::-1])
@example(np.zeros((4, 4), bool))
def test_convex_hull_contains_mask_and_matches_reference(mask):
    """The digital hull contains the mask, keeps its bounding box, is idempotent, and equals the
    Delaunay (or, for collinear pixels, the lattice-segment) reference."""
    hull = convex_hull_mask(mask)
    assert hull.shape == mask.shape and hull.dtype == bool
    assert (hull >= mask).all()
    np.testing.assert_array_equal(hull, convex_hull_mask(hull))
    if not mask.any():
        assert not hull.any()
        return
    assert mask_to_bbox(hull) == mask_to_bbox(mask)
    ref = hull_reference(mask)
    if ref is None:
        ref = segment_reference(mask)
    np.testing.assert_array_equal(hull, ref)


@FAST
@given(masks(max_side=14), st.integers(0, 3), st.integers(0, 3))
def test_convex_hull_is_equivariant(mask, pad_r, pad_c):
    """Hull commutes with transposition, flips and padding (translation)."""
    hull = convex_hull_mask(mask)
    np.testing.assert_array_equal(convex_hull_mask(mask.T), hull.T)
    np.testing.assert_array_equal(convex_hull_mask(mask[::-1]), hull[::-1])
    np.testing.assert_array_equal(convex_hull_mask(mask[:, ::-1]), hull[:, ::-1])
    padded = np.pad(mask, ((pad_r, 1), (pad_c, 2)))
    np.testing.assert_array_equal(convex_hull_mask(padded), np.pad(hull, ((pad_r, 1), (pad_c, 2))))


# ------------------------------------------------------------------------------------------------
# geometry.py
# ------------------------------------------------------------------------------------------------

def t64(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=F64) for v in values]


@FAST
@given(angles(), angles(-85.0, 85.0), st.floats(0.05, 100.0))
@example(180.0, 0.0, 1.0)
@example(-180.0, 20.0, 2.0)
@example(540.0, -30.0, 1.0)
@example(179.9, 85.0, 0.05)
@example(0.0, 0.0, 1.0)
def test_viewpoint_round_trip(az, el, dist):
    """viewpoint -> camera position -> viewpoint returns the angles (azimuth modulo 360) and distance."""
    position = geometry.camera_position(*t64(az, el, dist))
    assert math.isclose(float(position.norm()), dist, rel_tol=1e-12)
    az2, el2, dist2 = geometry.viewpoint_from_position(position)
    assert -180.0 < float(az2) <= 180.0  # documented range, also where x rounds to -0 (az = -180 in)
    assert abs(wrap_deg(float(az2) - az)) < 1e-7
    assert abs(float(el2) - el) < 1e-7
    assert math.isclose(float(dist2), dist, rel_tol=1e-12)


@FAST
@given(arrays(np.float64, (4, 3), elements=st.floats(-10.0, 10.0)).filter(
    lambda p: (np.linalg.norm(p, axis=1) > 1e-2).all()))
def test_position_round_trip(points):
    """camera position -> viewpoint -> camera position is the identity (batched)."""
    p = torch.as_tensor(points)
    az, el, dist = geometry.viewpoint_from_position(p)
    assert az.shape == el.shape == dist.shape == (4,)
    assert ((el >= -90) & (el <= 90)).all()
    torch.testing.assert_close(geometry.camera_position(az, el, dist), p, atol=1e-9, rtol=1e-9)


@FAST
@given(angles(), angles(-75.0, 75.0), st.floats(2.0, 20.0),
       arrays(np.float64, (3,), elements=st.floats(-0.2, 0.2)))
def test_look_at_rotation_and_view_transform(az, el, dist, target):
    """The look-at rotation is proper orthonormal, its forward row points at the target, its right
    row is horizontal and world up is image up; the view transform sends the camera centre to 0
    and the object origin to (0, 0, distance)."""
    position = geometry.camera_position(*t64(az, el, dist))
    tgt = torch.as_tensor(target)
    R = geometry.look_at_rotation(position, tgt)
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=F64), atol=1e-12, rtol=0)
    assert math.isclose(float(torch.linalg.det(R)), 1.0, abs_tol=1e-12)
    forward = (tgt - position) / (tgt - position).norm()
    torch.testing.assert_close(R @ forward, torch.tensor([0.0, 0.0, 1.0], dtype=F64), atol=1e-12, rtol=0)
    assert abs(float(R[0, 1])) < 1e-12                      # right has no world-up component
    assert float((R @ torch.tensor([0.0, 1.0, 0.0], dtype=F64))[1]) < 0  # world up is image up (y down)
    rotation, translation = geometry.view_transform(*t64(az, el, dist))
    cam = geometry.transform_points(torch.stack([position, torch.zeros(3, dtype=F64)]), rotation, translation)
    torch.testing.assert_close(cam[0], torch.zeros(3, dtype=F64), atol=1e-9 * dist, rtol=0)
    torch.testing.assert_close(cam[1], torch.tensor([0.0, 0.0, dist], dtype=F64), atol=1e-9 * dist, rtol=0)


@FAST
@given(arrays(np.float64, (6, 3), elements=st.floats(-5.0, 5.0)), st.floats(0.1, 50.0),
       st.floats(5.0, 2000.0), shapes)
def test_project_then_unproject(points, zmin, focal, size):
    """Pinhole projection followed by back-projection with the depth returns the point, and
    ``project`` agrees with the scalar formula ``u = f x / z + cx``."""
    h, w = size
    pts = torch.as_tensor(points)
    pts[:, 2] = pts[:, 2].abs() + zmin
    K = geometry.intrinsics(focal, w, h)
    uv, z = geometry.project(pts, K)
    torch.testing.assert_close(z, pts[:, 2], atol=0, rtol=0)
    for (x, y, d), (u, v) in zip(pts.tolist(), uv.tolist()):
        assert math.isclose(u, focal * x / d + w / 2, rel_tol=1e-12, abs_tol=1e-9)
        assert math.isclose(v, focal * y / d + h / 2, rel_tol=1e-12, abs_tol=1e-9)
    homog = torch.cat([uv, torch.ones(len(uv), 1, dtype=F64)], dim=1)
    back = torch.linalg.solve(K, homog.T).T * z[:, None]
    torch.testing.assert_close(back, pts, atol=1e-9, rtol=1e-9)


@FAST
@given(st.tuples(st.integers(1, 12), st.integers(1, 12)), st.floats(2.0, 200.0), st.floats(0.1, 30.0))
def test_pixel_rays_project_to_pixel_centres(size, focal, depth):
    """Every pixel ray is a unit vector in front of the camera that projects back onto its pixel
    centre (j + 0.5, i + 0.5) at any depth."""
    h, w = size
    K = geometry.intrinsics(focal, w, h)
    rays = geometry.pixel_rays(K, w, h)
    assert rays.shape == (h, w, 3)
    torch.testing.assert_close(rays.norm(dim=-1), torch.ones(h, w, dtype=F64), atol=1e-12, rtol=0)
    assert (rays[..., 2] > 0).all()
    uv, _ = geometry.project(rays.reshape(-1, 3) * depth, K)
    ii, jj = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
    centres = torch.stack([jj + 0.5, ii + 0.5], dim=-1).reshape(-1, 2)
    torch.testing.assert_close(uv, centres, atol=1e-9, rtol=0)


@FAST
@given(st.floats(1.0, 170.0), st.integers(1, 4096), st.floats(0.1, 100.0))
def test_focal_from_fov_puts_the_fov_edges_on_the_image_edges(fov, width, z):
    """A point at half the field of view left/right of the axis projects to u = 0 / u = W."""
    f = geometry.focal_from_fov(fov, width)
    K = geometry.intrinsics(f, width, 8)
    x = z * math.tan(math.radians(fov) / 2)
    uv, _ = geometry.project(torch.tensor([[x, 0.0, z], [-x, 0.0, z]], dtype=F64), K)
    assert math.isclose(float(uv[0, 0]), width, rel_tol=1e-9)
    assert abs(float(uv[1, 0])) < 1e-9 * width


def rodrigues(axis: int, angle_deg: float) -> torch.Tensor:
    """Reference right-handed rotation about a coordinate axis: I + sin(a) K + (1 - cos(a)) K^2."""
    k = torch.zeros(3, dtype=F64)
    k[axis] = 1.0
    K = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=F64)
    a = math.radians(angle_deg)
    return torch.eye(3, dtype=F64) + math.sin(a) * K + (1 - math.cos(a)) * (K @ K)


@FAST
@given(angles(), angles())
def test_axis_rotations(a, b):
    """``rotation_x/y/z`` equal Rodrigues' formula, compose additively and invert by transposition."""
    for axis, fn in enumerate((geometry.rotation_x, geometry.rotation_y, geometry.rotation_z)):
        ra, rb = fn(torch.tensor(a, dtype=F64)), fn(torch.tensor(b, dtype=F64))
        torch.testing.assert_close(ra, rodrigues(axis, a), atol=1e-12, rtol=0)
        torch.testing.assert_close(ra @ rb, fn(torch.tensor(a + b, dtype=F64)), atol=1e-12, rtol=0)
        torch.testing.assert_close(fn(torch.tensor(-a, dtype=F64)), ra.T, atol=1e-12, rtol=0)
    batched = geometry.rotation_y(torch.tensor([a, b], dtype=F64))
    assert batched.shape == (2, 3, 3)
    torch.testing.assert_close(batched[1], geometry.rotation_y(torch.tensor(b, dtype=F64)))


@FAST
@given(angles(), angles(), angles(), arrays(np.float64, (3,), elements=st.floats(-10, 10)),
       arrays(np.float64, (5, 3), elements=st.floats(-10, 10)))
def test_transform_points_and_inverse(a, b, c, t, points):
    """``transform_points`` is R x + t point by point, and (R^T, -R^T t) undoes it."""
    R = (geometry.rotation_z(torch.tensor(a, dtype=F64)) @ geometry.rotation_x(torch.tensor(b, dtype=F64))
         @ geometry.rotation_y(torch.tensor(c, dtype=F64)))
    tt, pts = torch.as_tensor(t), torch.as_tensor(points)
    out = geometry.transform_points(pts, R, tt)
    for p, o in zip(pts, out):
        torch.testing.assert_close(o, R @ p + tt, atol=1e-12, rtol=0)
    back = geometry.transform_points(out, R.T, -(R.T @ tt))
    torch.testing.assert_close(back, pts, atol=1e-9, rtol=0)


@FAST
@given(angles(), angles(-80.0, 80.0), st.floats(1.5, 6.0), st.floats(10.0, 200.0),
       st.tuples(st.integers(4, 64), st.integers(4, 64)),
       arrays(np.float64, (1, 5, 3), elements=st.floats(-0.5, 0.5)))
def test_viewpoint_camera_equals_full_pose_projection(az, el, dist, focal, size, verts):
    """The ROI camera without offset/scale is the pinhole camera of the view transform and a
    centred-principal-point K; the object origin lands on the raster centre."""
    h, w = size
    v = torch.as_tensor(verts)
    azt, elt, dt = (x.reshape(1) for x in t64(az, el, dist))
    uv_vp, depth_vp = project_viewpoint(v, azt, elt, dt, focal, (h, w))
    R, t = geometry.view_transform(azt, elt, dt)
    uv_full, depth_full = project_full(v, R, t, geometry.intrinsics(focal, w, h))
    torch.testing.assert_close(uv_vp, uv_full, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(depth_vp, depth_full, atol=1e-12, rtol=1e-12)
    assert (depth_vp > 0).all()
    uv0, d0 = project_viewpoint(torch.zeros(1, 1, 3, dtype=F64), azt, elt, dt, focal, (h, w))
    torch.testing.assert_close(uv0[0, 0], torch.tensor([w / 2, h / 2], dtype=F64), atol=1e-9, rtol=0)
    assert math.isclose(float(d0), dist, rel_tol=1e-12)


# ------------------------------------------------------------------------------------------------
# render/: mesh helpers and the soft rasteriser
# ------------------------------------------------------------------------------------------------

@functools.cache
def _sphere(subdivisions: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return icosphere(subdivisions, dtype=F64)


def sphere() -> tuple[torch.Tensor, torch.Tensor]:
    verts, faces = _sphere()
    return verts.clone(), faces.clone()


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.3))
def test_symmetrize_is_a_symmetric_projection(seed, noise):
    """``symmetrize`` output is mirror-symmetric, a fixed point of itself, and leaves symmetric
    shapes unchanged."""
    verts, _ = sphere()
    m = mirror_index(verts)
    gen = torch.Generator().manual_seed(seed)
    noisy = verts[None] + noise * torch.randn(2, *verts.shape, generator=gen, dtype=F64)
    sym = symmetrize(noisy, m)
    mirrored = sym[:, m].clone()
    mirrored[..., 0] = -mirrored[..., 0]
    torch.testing.assert_close(mirrored, sym, atol=1e-12, rtol=0)
    torch.testing.assert_close(symmetrize(sym, m), sym, atol=1e-12, rtol=0)
    torch.testing.assert_close(symmetrize(verts[None], m), verts[None], atol=1e-6, rtol=0)


@FAST
@given(st.floats(1e-3, 10.0), st.floats(1e-9, 0.49))
def test_soft_margin_is_where_the_probability_reaches_eps(sigma, eps):
    """At the margin distance d, ``sigmoid(-d^2 / sigma) == eps``."""
    d = soft_margin(sigma, eps)
    assert math.isclose(float(torch.sigmoid(torch.tensor(-d * d / sigma, dtype=F64))), eps, rel_tol=1e-9)


SIZE = 16


@st.composite
def triangle_soups(draw, max_faces: int = 4, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Random independent triangles (some partly off the raster): uv (1, 3F, 2) float64, faces (F, 3)."""
    n = draw(st.integers(1, max_faces))
    coord = st.floats(-3.0, size + 3.0, allow_nan=False)
    uv = torch.as_tensor(draw(arrays(np.float64, (1, 3 * n, 2), elements=coord)))
    return uv, torch.arange(3 * n).reshape(n, 3)


@st.composite
def sphere_meshes(draw, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 80-face icosphere, randomly scaled per axis, translated and viewed: uv, depth, faces."""
    verts, faces = sphere()
    scale = torch.as_tensor(draw(arrays(np.float64, (3,), elements=st.floats(0.1, 0.6))))
    shift = torch.as_tensor(draw(arrays(np.float64, (3,), elements=st.floats(-0.3, 0.3))))
    az, el = draw(angles(-180.0, 180.0)), draw(angles(-60.0, 60.0))
    offset = torch.as_tensor(draw(arrays(np.float64, (1, 2), elements=st.floats(-4.0, 4.0))))
    uv, depth = ViewpointCamera((size, size))((verts * scale + shift)[None], *(x.reshape(1) for x in t64(az, el, 2.5)),
                                              offset=offset)
    return uv, depth, faces


meshes = st.one_of(triangle_soups().map(lambda m: (m[0], torch.ones(m[0].shape[:2], dtype=F64), m[1])),
                   sphere_meshes())
sigmas = st.floats(0.01, 2.0)


@SLOW
@given(meshes, sigmas, sigmas)
def test_soft_silhouette_range_and_monotone_in_sigma_outside(mesh, s1, s2):
    """The soft silhouette lies in [0, 1]; outside the hard silhouette it grows with sigma (as in
    test_render); every pixel of the hard silhouette has it >= 1/2."""
    uv, depth, faces = mesh
    lo, hi = min(s1, s2), max(s1, s2)
    sil_lo = render_soft_silhouette(uv, faces, (SIZE, SIZE), sigma=lo, depth=depth)
    sil_hi = render_soft_silhouette(uv, faces, (SIZE, SIZE), sigma=hi, depth=depth)
    for sil in (sil_lo, sil_hi):
        assert sil.shape == (1, SIZE, SIZE) and torch.isfinite(sil).all()
        assert sil.min() >= 0.0 and sil.max() <= 1.0
    hard = rasterize_hard(uv, depth, faces, (SIZE, SIZE)).mask
    assert (sil_hi[~hard] >= sil_lo[~hard] - 1e-9).all()
    assert (sil_lo[hard] >= 0.5 - 1e-9).all() and (sil_hi[hard] >= 0.5 - 1e-9).all()


@SLOW
@given(triangle_soups(max_faces=1), sigmas, sigmas)
def test_single_triangle_inside_shrinks_with_sigma(mesh, s1, s2):
    """For one triangle the silhouette is sigmoid(signed d^2 / sigma): it grows with sigma outside and
    shrinks inside."""
    uv, faces = mesh
    lo, hi = min(s1, s2), max(s1, s2)
    sil_lo = render_soft_silhouette(uv, faces, (SIZE, SIZE), sigma=lo, eps=1e-12)
    sil_hi = render_soft_silhouette(uv, faces, (SIZE, SIZE), sigma=hi, eps=1e-12)
    hard = rasterize_hard(uv, torch.ones(uv.shape[:2], dtype=F64), faces, (SIZE, SIZE)).mask
    assert (sil_hi[hard] <= sil_lo[hard] + 1e-9).all()
    assert (sil_hi[~hard] >= sil_lo[~hard] - 1e-9).all()


@SLOW
@given(meshes, sigmas)
def test_soft_silhouette_matches_dense_reference(mesh, sigma):
    """The culled, windowed rasteriser equals the dense all-pixels x all-faces reference."""
    uv, depth, faces = mesh
    ours = render_soft_silhouette(uv, faces, (SIZE, SIZE), sigma=sigma, depth=depth, eps=1e-12)
    dense = soft_silhouette_dense(uv, faces, (SIZE, SIZE), sigma=sigma, depth=depth)
    torch.testing.assert_close(ours, dense, atol=1e-9, rtol=0)


@SLOW
@given(meshes, sigmas, st.integers(0, 5), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_soft_silhouette_translation_permutation_and_batch_invariance(mesh, sigma, dx, dy, seed):
    """Shifting uv by whole pixels shifts the image; the face order does not matter; a batch renders
    each mesh independently."""
    uv, depth, faces = mesh
    size = (SIZE, SIZE)
    base = render_soft_silhouette(uv, faces, size, sigma=sigma, depth=depth, eps=1e-12)
    shifted = render_soft_silhouette(uv + torch.tensor([dx, dy], dtype=F64), faces, size, sigma=sigma, depth=depth,
                                     eps=1e-12)
    torch.testing.assert_close(shifted[:, dy:, dx:], base[:, :SIZE - dy, :SIZE - dx], atol=1e-9, rtol=0)
    perm = torch.randperm(len(faces), generator=torch.Generator().manual_seed(seed))
    permuted = render_soft_silhouette(uv, faces[perm], size, sigma=sigma, depth=depth, eps=1e-12)
    torch.testing.assert_close(permuted, base, atol=1e-10, rtol=0)
    flipped = uv.flip(-1)  # transpose the image: x <-> y
    both = render_soft_silhouette(torch.cat([uv, flipped]), faces, size, sigma=sigma, depth=torch.cat([depth, depth]),
                                  eps=1e-12)
    torch.testing.assert_close(both[:1], base, atol=1e-10, rtol=0)
    torch.testing.assert_close(both[1:], base.transpose(1, 2), atol=1e-9, rtol=0)
