"""Shared builders of the procedural generators (one module per category beside this one): random
draws from the generator given (``_u``, ``_chance``, ``_pick``) and parts used by several categories
(legs, fillets, back panels, wings: the submarine's fins are wings too). Package-internal."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amodal3d.data.shapes.primitives import (
    Part,
    loft,
    mirrored_pair,
    rot_z,
    tube,
)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Uniform float in [lo, hi)."""
    return float(rng.uniform(lo, hi))


def _chance(rng: np.random.Generator, p: float) -> bool:
    """True with probability ``p``."""
    return bool(rng.random() < p)


def _pick(rng: np.random.Generator, options: Sequence):
    """One element of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _fillet(points: Sequence[Sequence[float]], radius: float, steps: int = 3) -> np.ndarray:
    """A polyline with each interior corner replaced by a quadratic arc of about ``radius``."""
    pts = np.asarray(points, dtype=np.float64)
    out = [pts[0]]
    for i in range(1, len(pts) - 1):
        p, a, b = pts[i], pts[i - 1], pts[i + 1]
        ra = min(radius, 0.45 * np.linalg.norm(a - p))
        rb = min(radius, 0.45 * np.linalg.norm(b - p))
        p0 = p + (a - p) / np.linalg.norm(a - p) * ra
        p2 = p + (b - p) / np.linalg.norm(b - p) * rb
        for t in np.linspace(0.0, 1.0, steps):
            out.append((1 - t) ** 2 * p0 + 2 * t * (1 - t) * p + t ** 2 * p2)
    out.append(pts[-1])
    return np.asarray(out)


def _both(part: Part) -> list[Part]:
    """A side part (built at x > 0) and its mirror image."""
    return mirrored_pair(part)


def _leg(p0: Sequence[float], p1: Sequence[float], r0: float, r1: float, square: bool) -> Part:
    """A straight leg, square (4 sides) or round (10 sides), tapering from ``r0`` to ``r1``."""
    return tube([p0, p1], [r0, r1], sections=4 if square else 10)


def _arc_points(center: Sequence[float], radius: float, a0: float, a1: float, n: int) -> np.ndarray:
    """``n`` points (N, 2) on a circular arc from angle ``a0`` to ``a1`` (degrees)."""
    a = np.radians(np.linspace(a0, a1, n))
    return np.asarray(center, dtype=np.float64) + radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def _panel_xy(width: float, height: float, top: str, rng: np.random.Generator) -> np.ndarray:
    """Outline (N, 2) in (x, y) of a chair/bench back panel, bottom at y = 0: ``top`` one of
    ``flat``, ``arched``, ``rounded``, ``notched``."""
    hw = width / 2
    if top == "arched":
        rise = _u(rng, 0.06, 0.2) * height
        xs = np.linspace(hw, -hw, 9)
        ys = height - rise + rise * np.cos(np.pi * xs / width)
        return np.concatenate([[[-hw, 0.0], [hw, 0.0]], np.column_stack([xs, ys])])
    if top == "rounded":
        r = min(hw, height) * _u(rng, 0.2, 0.5)
        right = _arc_points((hw - r, height - r), r, 0, 90, 4)
        left = _arc_points((-hw + r, height - r), r, 90, 180, 4)
        return np.concatenate([[[-hw, 0.0], [hw, 0.0]], right, left])
    if top == "notched":
        dip = _u(rng, 0.04, 0.1) * height
        return np.array([[-hw, 0], [hw, 0], [hw, height], [0.25 * hw, height], [0, height - dip],
                         [-0.25 * hw, height], [-hw, height]])
    return np.array([[-hw, 0], [hw, 0], [hw, height], [-hw, height]])


# symmetric-ish airfoil: (chordwise from the leading edge, thickness) in units of chord / half-thickness
_AIRFOIL = np.array([(0.0, 0.0), (-0.05, 0.6), (-0.2, 1.0), (-0.45, 0.85), (-0.75, 0.4), (-1.0, 0.04),
                     (-0.75, -0.3), (-0.45, -0.6), (-0.2, -0.7), (-0.05, -0.45)])


def _wing(root_le: Sequence[float], root_chord: float, tip_chord: float, span: float, sweep: float,
          dihedral: float, tc: float, vertical: bool = False, cant: float = 0.0) -> Part:
    """One wing / stabiliser / fin (a loft of two airfoil sections) from the root leading edge
    ``root_le``: ``span`` towards +x (or +y when ``vertical``), leading edge swept back by ``sweep``
    degrees, rising with ``dihedral`` degrees; ``tc`` thickness / chord; ``cant`` tilts a fin outwards."""
    root = np.asarray(root_le, dtype=np.float64)
    rings = []
    for frac, chord in ((0.0, root_chord), (1.0, tip_chord)):
        along = frac * span
        back = along * np.tan(np.radians(sweep))
        dz = _AIRFOIL[:, 0] * chord - back
        thick = _AIRFOIL[:, 1] * tc * chord * 0.5
        if vertical:
            pts = np.stack([thick, np.full(len(dz), along), dz], -1)
            pts = pts @ rot_z(-cant).T
        else:
            rise = along * np.tan(np.radians(dihedral))
            pts = np.stack([np.full(len(dz), along), thick + rise, dz], -1)
        rings.append(pts + root)
    return loft(np.stack(rings))
