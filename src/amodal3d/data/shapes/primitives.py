"""Light-weight mesh primitives for the procedural shape generators.

A *part* is a pair ``(vertices (V, 3) float64, faces (F, 3) int64)``. Every function here is pure and
builds its arrays with numpy directly (``trimesh.creation`` costs ~1 ms per primitive, these ~20 µs),
so an object of 50 parts is generated in a few milliseconds. Closed parts get outward winding
(checked with the signed volume); open surfaces (sails, lamp shades) are single sheets, which the
two-sided shading of the data engine renders from both sides. :func:`assemble` concatenates parts
into one ``trimesh.Trimesh`` that carries a part index per face in ``metadata["part_ids"]``.

Frame: +Y up, +Z front, as in :mod:`amodal3d.geometry`. Angles are in degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import trimesh

Part = tuple[np.ndarray, np.ndarray]

SECTIONS = 12            # default segments around a cylinder
MIN_FACE_AREA = 1e-14    # faces below this area (before normalisation) are dropped by assemble


# ----------------------------------------------------------------------------------------------
# rotations and transforms
# ----------------------------------------------------------------------------------------------

def rot_x(deg: float) -> np.ndarray:
    """3x3 rotation about +X (right-handed: +Y turns towards +Z)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    """3x3 rotation about +Y (+Z turns towards +X)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    """3x3 rotation about +Z (+X turns towards +Y)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def transform(part: Part, rotation: np.ndarray | None = None, translation: Sequence[float] = (0, 0, 0),
              scale: Sequence[float] | float = 1.0) -> Part:
    """``v -> rotation @ (scale * v) + translation``; a reflection flips the faces to keep winding."""
    verts, faces = part
    linear = np.diag(np.broadcast_to(np.asarray(scale, dtype=np.float64), (3,)))
    if rotation is not None:
        linear = np.asarray(rotation, dtype=np.float64) @ linear
    verts = verts @ linear.T + np.asarray(translation, dtype=np.float64)
    if np.linalg.det(linear) < 0:
        faces = faces[:, ::-1]
    return verts, faces


def mirror_x(part: Part) -> Part:
    """Mirror image of a part in the x = 0 plane (winding kept outward)."""
    return transform(part, scale=(-1.0, 1.0, 1.0))


def mirrored_pair(part: Part) -> list[Part]:
    """``[part, its x-mirror]``: the left and right copies of a symmetric object's side part."""
    return [part, mirror_x(part)]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product along the last axis (``np.cross`` is ~20x slower on small arrays)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def _orient_outward(part: Part) -> Part:
    """Flip all faces of a closed part whose signed volume is negative."""
    verts, faces = part
    tri = verts[faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], _cross(tri[:, 1], tri[:, 2])).sum()
    return (verts, faces[:, ::-1].copy()) if volume < 0 else part


# ----------------------------------------------------------------------------------------------
# 2D helpers
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _unit_circle(sections: int, start_deg: float) -> np.ndarray:
    a = np.radians(start_deg) + np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    out = np.stack([np.cos(a), np.sin(a)], axis=1)
    out.flags.writeable = False
    return out


def circle(radius: float = 1.0, sections: int = SECTIONS, start_deg: float = 0.0) -> np.ndarray:
    """(sections, 2) points of a circle, counter-clockwise."""
    return radius * _unit_circle(sections, float(start_deg))


@lru_cache(maxsize=16)
def _corner_table(corner_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Corner signs and unit arc directions of :func:`rounded_rect` (cached, read-only)."""
    signs, dirs = [], []
    for k, (sx, sy) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        a = np.radians(90.0 * k) + np.linspace(0.0, np.pi / 2, corner_segments + 1)
        signs.append(np.tile([sx, sy], (corner_segments + 1, 1)))
        dirs.append(np.stack([np.cos(a), np.sin(a)], axis=1))
    signs_arr, dirs_arr = np.concatenate(signs).astype(np.float64), np.concatenate(dirs)
    signs_arr.flags.writeable = dirs_arr.flags.writeable = False
    return signs_arr, dirs_arr


def rounded_rect(width: float, height: float, radius: float, corner_segments: int = 3) -> np.ndarray:
    """(4 * (corner_segments + 1), 2) counter-clockwise points of a rectangle centred at the origin
    with rounded corners (``radius`` is clipped to fit and kept > 0 so no two points coincide)."""
    radius = float(np.clip(radius, 1e-4 * min(width, height), 0.499 * min(width, height)))
    signs, dirs = _corner_table(corner_segments)
    return signs * (np.array([width / 2 - radius, height / 2 - radius])) + radius * dirs


def polygon_area(poly: np.ndarray) -> float:
    """Signed area (> 0 when counter-clockwise)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def triangulate_polygon(poly: np.ndarray) -> np.ndarray:
    """Ear-clipping triangulation of a simple polygon given counter-clockwise; (N-2, 3) indices."""
    pts = np.asarray(poly, dtype=np.float64)
    idx = list(range(len(pts)))
    tris: list[tuple[int, int, int]] = []
    while len(idx) > 3:
        n = len(idx)
        cur = pts[idx]
        prev, nxt = np.roll(cur, 1, axis=0), np.roll(cur, -1, axis=0)
        cross = (cur[:, 0] - prev[:, 0]) * (nxt[:, 1] - prev[:, 1]) - \
            (cur[:, 1] - prev[:, 1]) * (nxt[:, 0] - prev[:, 0])
        clipped = False
        for k in np.argsort(-cross):  # fattest convex corner first: fewer slivers
            if cross[k] <= 1e-14:
                break
            a, b, c = prev[k], cur[k], nxt[k]
            others = np.delete(cur, [(k - 1) % n, k, (k + 1) % n], axis=0)
            if len(others):
                d1 = (b[0] - a[0]) * (others[:, 1] - a[1]) - (b[1] - a[1]) * (others[:, 0] - a[0])
                d2 = (c[0] - b[0]) * (others[:, 1] - b[1]) - (c[1] - b[1]) * (others[:, 0] - b[0])
                d3 = (a[0] - c[0]) * (others[:, 1] - c[1]) - (a[1] - c[1]) * (others[:, 0] - c[0])
                if np.any((d1 >= 0) & (d2 >= 0) & (d3 >= 0)):
                    continue
            tris.append((idx[(k - 1) % n], idx[k], idx[(k + 1) % n]))
            idx.pop(k)
            clipped = True
            break
        if not clipped:  # degenerate input: clip the first corner anyway
            tris.append((idx[-1], idx[0], idx[1]))
            idx.pop(0)
    tris.append((idx[0], idx[1], idx[2]))
    return np.asarray(tris, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# 3D primitives
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def _ring_faces(n_rings: int, n: int) -> np.ndarray:
    """Quads (two triangles each) between consecutive closed rings of ``n`` vertices (cached: read-only)."""
    i = np.arange(n_rings - 1)[:, None]
    j = np.arange(n)[None, :]
    a = i * n + j
    b = i * n + (j + 1) % n
    c = (i + 1) * n + (j + 1) % n
    d = (i + 1) * n + j
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    faces.flags.writeable = False
    return faces


def loft(rings: np.ndarray, cap_start: bool = True, cap_end: bool = True,
         start_apex: Sequence[float] | None = None, end_apex: Sequence[float] | None = None) -> Part:
    """Surface through closed rings (K, N, 3) of matching vertices; the ends are closed by a fan from
    the ring centroid or from an apex point (a pointed nose). Closed results are oriented outward."""
    rings = np.asarray(rings, dtype=np.float64)
    k, n = rings.shape[:2]
    verts = [rings.reshape(-1, 3)]
    faces = [_ring_faces(k, n)]
    count = k * n
    j = np.arange(n)
    if cap_start or start_apex is not None:
        centre = rings[0].mean(axis=0) if start_apex is None else np.asarray(start_apex, dtype=np.float64)
        verts.append(centre[None])
        faces.append(np.stack([np.full(n, count), (j + 1) % n, j], -1))
        count += 1
    if cap_end or end_apex is not None:
        centre = rings[-1].mean(axis=0) if end_apex is None else np.asarray(end_apex, dtype=np.float64)
        verts.append(centre[None])
        faces.append(np.stack([np.full(n, count), (k - 1) * n + j, (k - 1) * n + (j + 1) % n], -1))
    part = (np.concatenate(verts), np.concatenate(faces).astype(np.int64))
    closed = (cap_start or start_apex is not None) and (cap_end or end_apex is not None)
    return _orient_outward(part) if closed else part


def prism(poly: np.ndarray, w0: float, w1: float) -> Part:
    """Extrusion of a simple polygon ``poly`` (N, 2) in the local (u, v) plane from w = w0 to w = w1
    (local axes u, v, w = x, y, z; map them with :func:`transform` or use :func:`profile_zy`)."""
    poly = np.asarray(poly, dtype=np.float64)
    if polygon_area(poly) < 0:
        poly = poly[::-1]
    n = len(poly)
    tris = triangulate_polygon(poly)
    verts = np.concatenate([np.column_stack([poly, np.full(n, w0)]), np.column_stack([poly, np.full(n, w1)])])
    faces = np.concatenate([_ring_faces(2, n), tris[:, ::-1], tris + n])
    return _orient_outward((verts, faces))


_ZY_TO_XYZ = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # (u, v, w) -> (x=w, y=v, z=u)


def profile_zy(poly: Sequence[Sequence[float]], width: float, x: float = 0.0) -> Part:
    """A side profile (N, 2) of (z, y) points extruded along x over ``[x - width/2, x + width/2]``."""
    return transform(prism(np.asarray(poly, dtype=np.float64), x - width / 2, x + width / 2), _ZY_TO_XYZ)


_XZ_TO_XYZ = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (u, v, w) -> (x=u, y=w, z=-v)


def profile_xz(poly: Sequence[Sequence[float]], y0: float, y1: float) -> Part:
    """A plan shape (N, 2) of (x, z) points extruded vertically over ``[y0, y1]``."""
    poly = np.asarray(poly, dtype=np.float64) * np.array([1.0, -1.0])
    return transform(prism(poly, y0, y1), _XZ_TO_XYZ)


def box(size: Sequence[float], center: Sequence[float] = (0, 0, 0),
        rotation: np.ndarray | None = None) -> Part:
    """Axis-aligned box of ``size`` (sx, sy, sz) centred at ``center`` (rotated about its centre)."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int64)
    return transform((corners * np.asarray(size, dtype=np.float64), faces), rotation, center)


def box_between(y0: float, y1: float, x: Sequence[float], z: Sequence[float]) -> Part:
    """Box spanning ``x = (x0, x1)``, ``y0..y1`` and ``z = (z0, z1)``."""
    return box((x[1] - x[0], y1 - y0, z[1] - z[0]), ((x[0] + x[1]) / 2, (y0 + y1) / 2, (z[0] + z[1]) / 2))


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``axis`` (and to each other); the first lies in the plane
    of ``axis`` and +X when possible, so that parts built at ±x are mirror images."""
    axis = axis / np.linalg.norm(axis)
    ref = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = ref - axis * np.dot(ref, axis)
    e1 /= np.linalg.norm(e1)
    return e1, _cross(axis, e1)


def tube(points: Sequence[Sequence[float]], radii: Sequence[float] | float, sections: int = SECTIONS,
         caps: bool = True, aspect: float = 1.0) -> Part:
    """A generalised cylinder along a polyline ``points`` (K, 3) with one radius per point (or one
    for all); ``aspect`` squashes the cross-section along the second frame axis (an oval tube)."""
    pts = np.asarray(points, dtype=np.float64)
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(pts),))
    ring = circle(1.0, sections, start_deg=180.0 / sections)
    rings = []
    for i, p in enumerate(pts):
        if i == 0:
            direction = pts[1] - pts[0]
        elif i == len(pts) - 1:
            direction = pts[-1] - pts[-2]
        else:  # bisector of the two segments
            d0 = pts[i] - pts[i - 1]
            d1 = pts[i + 1] - pts[i]
            direction = d0 / np.linalg.norm(d0) + d1 / np.linalg.norm(d1)
        e1, e2 = _frame(direction)
        rings.append(p + radii[i] * (ring[:, :1] * e1 + aspect * ring[:, 1:] * e2))
    return loft(np.stack(rings), cap_start=caps, cap_end=caps)


def cylinder(p0: Sequence[float], p1: Sequence[float], r0: float, r1: float | None = None,
             sections: int = SECTIONS) -> Part:
    """Closed cylinder (or cone frustum with end radius ``r1``) from point ``p0`` to ``p1``."""
    return tube([p0, p1], [r0, r0 if r1 is None else r1], sections)


def lathe(profile: Sequence[Sequence[float]], sections: int = 16, caps: bool = True,
          center: Sequence[float] = (0, 0, 0), rotation: np.ndarray | None = None) -> Part:
    """Surface of revolution about +Y of a profile (K, 2) of (radius, height) points, bottom to top.
    A first/last radius of 0 makes a pole; ``caps=False`` leaves open ends (a lamp shade)."""
    prof = np.asarray(profile, dtype=np.float64)
    start_apex = end_apex = None
    if prof[0, 0] <= 1e-9:
        start_apex, prof = (0.0, prof[0, 1], 0.0), prof[1:]
    if prof[-1, 0] <= 1e-9:
        end_apex, prof = (0.0, prof[-1, 1], 0.0), prof[:-1]
    ring = circle(1.0, sections, start_deg=180.0 / sections)
    rings = np.stack([np.column_stack([r * ring[:, 0], np.full(sections, h), -r * ring[:, 1]])
                      for r, h in prof])
    part = loft(rings, cap_start=caps, cap_end=caps, start_apex=start_apex, end_apex=end_apex)
    return transform(part, rotation, center)


def revolve_loop(section: Sequence[Sequence[float]], sections: int = 16, center: Sequence[float] = (0, 0, 0),
                 rotation: np.ndarray | None = None) -> Part:
    """Closed surface of revolution about +Y of a closed cross-section loop (M, 2) of (radius, height)
    points (all radii > 0): a torus-like ring (a tyre, a rim)."""
    sec = np.asarray(section, dtype=np.float64)
    m = len(sec)
    ring = circle(1.0, sections, start_deg=180.0 / sections)
    verts = np.stack([np.column_stack([sec[:, 0] * c, sec[:, 1], -sec[:, 0] * s])
                      for c, s in ring])  # (S, M, 3)
    i = np.arange(sections)[:, None]
    j = np.arange(m)[None, :]
    a = i * m + j
    b = i * m + (j + 1) % m
    c = ((i + 1) % sections) * m + (j + 1) % m
    d = ((i + 1) % sections) * m + j
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return transform(_orient_outward((verts.reshape(-1, 3), faces)), rotation, center)


def ellipsoid(center: Sequence[float], radii: Sequence[float], rows: int = 6, sections: int = SECTIONS
              ) -> Part:
    """Ellipsoid with semi-axes ``radii`` (UV sphere with ``rows`` latitude bands)."""
    t = np.linspace(0.0, np.pi, rows + 1)
    profile = np.stack([np.sin(t), -np.cos(t)], axis=1)
    profile[0, 0] = profile[-1, 0] = 0.0
    return transform(lathe(profile, sections), None, center, radii)


def disc(center: Sequence[float], radius: float, thickness: float, axis: str = "y",
         sections: int = 16) -> Part:
    """Short cylinder (a plate, a wheel, a driver) centred at ``center`` along a coordinate axis."""
    direction = {"x": np.array([1.0, 0, 0]), "y": np.array([0, 1.0, 0]), "z": np.array([0, 0, 1.0])}[axis]
    c = np.asarray(center, dtype=np.float64)
    return cylinder(c - direction * thickness / 2, c + direction * thickness / 2, radius, sections=sections)


def rounded_box(size: Sequence[float], radius: float, center: Sequence[float] = (0, 0, 0),
                rotation: np.ndarray | None = None, corner_segments: int = 2, corner: float | None = None
                ) -> Part:
    """Box with rounded edges (a cushion, a phone, a cabinet top) of ``size`` (sx, sy, sz): the edges
    round with ``radius``; the four edges parallel to z with ``corner`` (default ``radius``)."""
    sx, sy, sz = (float(s) for s in size)
    radius = float(np.clip(radius, 1e-4, 0.49 * min(sx, sy, sz)))
    corner_r = radius if corner is None else float(np.clip(corner, radius, 0.49 * min(sx, sy)))
    a = np.radians(np.linspace(0.0, 90.0, corner_segments + 1))
    a = np.concatenate([a, a[::-1]])
    side = np.repeat([-1.0, 1.0], corner_segments + 1)
    inset = radius * (1.0 - np.sin(a))                       # (K,)
    zs = side * (sz / 2 - radius * (1.0 - np.cos(a)))
    arc = np.maximum(corner_r - inset, 0.15 * radius)      # corner radius of each ring
    signs, dirs = _corner_table(corner_segments)
    half = np.stack([sx / 2 - inset - arc, sy / 2 - inset - arc], axis=1)  # (K, 2)
    rect = signs[None] * half[:, None] + arc[:, None, None] * dirs[None]   # (K, N, 2)
    rings = np.concatenate([rect, np.broadcast_to(zs[:, None, None], rect.shape[:2] + (1,))], axis=2)
    return transform(loft(np.stack(rings)), rotation, center)


def sheet(points: Sequence[Sequence[float]]) -> Part:
    """A flat (or gently warped) open polygon surface, fan-triangulated from vertex 0 (sails)."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    faces = np.stack([np.zeros(n - 2, dtype=np.int64), np.arange(1, n - 1), np.arange(2, n)], -1)
    return pts, faces


def grid_sheet(corners: np.ndarray, rows: int, cols: int, bulge: Sequence[float] = (0, 0, 0)) -> Part:
    """Bilinear patch through 4 corners (p00, p10, p11, p01) subdivided ``rows`` x ``cols``, displaced by
    ``bulge * sin(pi u) sin(pi v)`` (a cambered sail)."""
    c = np.asarray(corners, dtype=np.float64)
    u = np.linspace(0.0, 1.0, cols + 1)[None, :, None]
    v = np.linspace(0.0, 1.0, rows + 1)[:, None, None]
    pts = (1 - u) * (1 - v) * c[0] + u * (1 - v) * c[1] + u * v * c[2] + (1 - u) * v * c[3]
    pts = pts + np.sin(np.pi * u) * np.sin(np.pi * v) * np.asarray(bulge, dtype=np.float64)
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    a = i * (cols + 1) + j
    b, d = a + 1, a + cols + 1
    faces = np.concatenate([np.stack([a, b, d + 1], -1).reshape(-1, 3),
                            np.stack([a, d + 1, d], -1).reshape(-1, 3)])
    return pts.reshape(-1, 3), faces


# ----------------------------------------------------------------------------------------------
# assembly
# ----------------------------------------------------------------------------------------------

def assemble(parts: Sequence[Part]) -> trimesh.Trimesh:
    """Concatenate parts into one mesh; ``metadata["part_ids"]`` (F,) int32 is the index of each face's
    part. Faces of (near) zero area and unreferenced vertices are dropped."""
    verts, faces, ids = [], [], []
    offset = 0
    for k, (v, f) in enumerate(parts):
        verts.append(v)
        faces.append(f + offset)
        ids.append(np.full(len(f), k, dtype=np.int32))
        offset += len(v)
    v = np.concatenate(verts)
    f = np.concatenate(faces)
    part_ids = np.concatenate(ids)
    tri = v[f]
    area2 = np.linalg.norm(_cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    keep = area2 > 2 * MIN_FACE_AREA
    f, part_ids = f[keep], part_ids[keep]
    used, inverse = np.unique(f, return_inverse=True)
    mesh = trimesh.Trimesh(v[used], inverse.reshape(-1, 3), process=False)
    mesh.metadata["part_ids"] = part_ids
    return mesh


def normalize_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Copy of ``mesh`` with its bounding box centred at the origin and a bounding-box diagonal of 1
    (ShapeNetCore v2 ``model_normalized``); metadata is kept."""
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    if not np.isfinite(diagonal) or diagonal <= 0:
        raise ValueError("cannot normalize an empty or degenerate mesh")
    out = trimesh.Trimesh((verts - (lo + hi) / 2) / diagonal, np.asarray(mesh.faces), process=False)
    out.metadata.update(mesh.metadata)
    return out
