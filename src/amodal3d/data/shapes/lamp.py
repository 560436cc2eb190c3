"""Procedural lamp meshes: :func:`build` draws the parts of one lamp of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amodal3d.data.shapes.common import (
    _chance,
    _pick,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    cylinder,
    disc,
    ellipsoid,
    lathe,
    rot_x,
    rounded_box,
    transform,
    tube,
)


def _shade(rng: np.random.Generator, r_bottom: float, height: float, kind: str, center: Sequence[float],
           rotation: np.ndarray | None = None) -> Part:
    """Open lamp shade (no caps) with its bottom opening at ``center``: ``drum``, ``cone`` (empire), ``dome``,
    ``bell``."""
    if kind == "drum":
        prof = [(r_bottom, 0.0), (r_bottom * _u(rng, 0.95, 1.0), height)]
    elif kind == "cone":
        prof = [(r_bottom, 0.0), (r_bottom * 0.8, 0.5 * height), (r_bottom * _u(rng, 0.45, 0.65), height)]
    elif kind == "dome":
        a = np.linspace(0.0, np.pi / 2 * 0.93, 6)
        prof = [(r_bottom * np.cos(t), height * np.sin(t)) for t in a]
    else:  # bell / flared
        prof = [(r_bottom, 0.0), (r_bottom * 0.75, 0.25 * height), (r_bottom * 0.45, 0.7 * height),
                (r_bottom * 0.35, height)]
    return lathe(prof, sections=20, caps=False, center=center, rotation=rotation)


def build(rng: np.random.Generator, variant: str) -> list[Part]:
    """Floor lamp (straight or arc), desk lamp with a two-segment arm, pendant, table lamp."""
    parts: list[Part] = []
    if variant == "floor":
        height = _u(rng, 1.4, 1.8)
        if _chance(rng, 0.5):
            parts.append(lathe([(0.0, 0.0), (_u(rng, 0.12, 0.18), 0.0),
                                (_u(rng, 0.1, 0.15), _u(rng, 0.02, 0.05)),
                                (0.0, 0.04)], sections=18))
        else:  # tripod
            spread = _u(rng, 0.2, 0.35)
            for k in range(3):
                a = np.radians(90 + 120 * k)
                parts.append(cylinder((spread * np.cos(a), 0.0, spread * np.sin(a)), (0, height * 0.45, 0),
                                      0.012, sections=6))
        if _chance(rng, 0.6):  # straight pole, shade on top
            parts.append(cylinder((0, 0.02, 0), (0, height, 0), _u(rng, 0.01, 0.016), sections=8))
            sh = _u(rng, 0.2, 0.35)
            parts.append(_shade(rng, _u(rng, 0.18, 0.25), sh, _pick(rng, ("drum", "cone")),
                                (0, height - 0.6 * sh, 0)))
        else:  # arc lamp reaching forward (+z), shade pointing down
            reach = _u(rng, 0.6, 1.1)
            a = np.radians(np.linspace(0, 90,
                                       8))[1:]   # a quarter circle of radius ``reach`` on top of the pole
            pts = [(0.0, 0.02, 0.0), (0.0, height - reach, 0.0)] + [
                (0.0, height - reach + reach * np.sin(t), reach - reach * np.cos(t)) for t in a]
            pts += [(0.0, height - 0.05, reach + 0.15), (0.0, height - 0.12, reach + 0.25)]
            parts.append(tube(pts, 0.012, sections=8))
            parts.append(_shade(rng, _u(rng, 0.15, 0.25), _u(rng, 0.1, 0.2), _pick(rng, ("dome", "bell")),
                                (0.0, height - 0.35, reach + 0.25)))
            parts.append(ellipsoid((0.0, height - 0.3, reach + 0.25), (0.04, 0.04, 0.04), rows=4, sections=8))
        return parts
    if variant == "pendant":
        drop = _u(rng, 0.3, 1.0)
        parts.append(lathe([(0.0, 0.0), (0.06, 0.0), (0.06, 0.02), (0.0, 0.03)], sections=14,
                           center=(0, drop, 0)))
        parts.append(cylinder((0, 0.0, 0), (0, drop, 0), 0.006, sections=6))  # cord
        kind = _pick(rng, ("dome", "bell", "drum", "globe", "cone"))
        r = _u(rng, 0.12, 0.3)
        sh = r * _u(rng, 0.5, 1.1)
        if kind == "globe":
            parts.append(ellipsoid((0, -r * 0.95, 0), (r, r * _u(rng, 0.8, 1.1), r), rows=8, sections=16))
        else:
            parts.append(_shade(rng, r, sh, kind, (0, -sh, 0)))
            parts.append(disc((0, -0.01, 0), 0.03, 0.04, axis="y", sections=10))
            parts.append(ellipsoid((0, -sh * 0.5, 0), (0.035, 0.05, 0.035), rows=4, sections=8))
        return parts
    if variant == "table":
        body_h = _u(rng, 0.2, 0.4)
        kind = _pick(rng, ("vase", "column", "ball"))
        if kind == "vase":
            r = _u(rng, 0.07, 0.12)
            prof = [(0.0, 0.0), (r * 0.6, 0.0), (r, 0.35 * body_h), (r * 0.9, 0.7 * body_h),
                    (r * 0.3, body_h),
                    (0.0, body_h)]
        elif kind == "column":
            r = _u(rng, 0.02, 0.035)
            prof = [(0.0, 0.0), (0.08, 0.0), (0.08, 0.025), (r, 0.04), (r, body_h), (0.0, body_h)]
        else:
            r = _u(rng, 0.08, 0.12)
            t = np.linspace(-np.pi / 2, np.pi / 2, 7)
            prof = [(0.0, 0.0), (0.05, 0.0)] + [(r * np.cos(a), r + r * np.sin(a)) for a in t[1:-1]] + \
                [(0.02, 2 * r), (0.0, 2 * r)]
            body_h = 2 * r
        parts.append(lathe(prof, sections=16))
        neck = _u(rng, 0.04, 0.12)
        sh = _u(rng, 0.6, 0.9) * body_h + 0.05
        parts.append(cylinder((0, body_h, 0), (0, body_h + neck + 0.6 * sh, 0), 0.008, sections=6))
        parts.append(ellipsoid((0, body_h + neck + 0.3 * sh, 0), (0.03, 0.045, 0.03), rows=4, sections=8))
        parts.append(_shade(rng, sh * _u(rng, 0.55, 0.85), sh, _pick(rng, ("drum", "cone", "cone")),
                            (0, body_h + neck, 0)))
        return parts
    # desk lamp: base, lower arm leaning back, upper arm reaching forward, head pointing down/forward
    base_r = _u(rng, 0.07, 0.11)
    if _chance(rng, 0.6):
        parts.append(lathe([(0.0, 0.0), (base_r, 0.0), (base_r * 0.9, 0.03), (0.0, 0.035)], sections=16))
    else:
        parts.append(rounded_box((base_r * 2, 0.03, base_r * 2.2), 0.008, (0, 0.015, 0), corner=0.02))
    a1, l1 = np.radians(_u(rng, -25, 15)), _u(rng, 0.28, 0.42)    # lower arm: lean from vertical (+: forward)
    a2, l2 = np.radians(_u(rng, -20, 25)), _u(rng, 0.28, 0.42)    # upper arm: forward, angle above horizontal
    p0 = np.array([0.0, 0.04, -0.3 * base_r])
    p1 = p0 + l1 * np.array([0.0, np.cos(a1), np.sin(a1)])
    p2 = p1 + l2 * np.array([0.0, np.sin(a2), np.cos(a2)])
    twin = _chance(rng, 0.5)
    for q0, q1 in ((p0, p1), (p1, p2)):
        if twin:
            for dx in (-0.012, 0.012):
                parts.append(cylinder(q0 + [dx, 0, 0], q1 + [dx, 0, 0], 0.005, sections=6))
        else:
            parts.append(cylinder(q0, q1, 0.009, sections=8))
    for q in (p0, p1, p2):
        parts.append(disc(q, 0.018, 0.035, axis="x", sections=10))
    if _chance(rng, 0.5):  # spring
        parts.append(cylinder(p0 + (p1 - p0) * 0.2 + [0, 0, -0.02], p0 + (p1 - p0) * 0.7 + [0, 0, -0.02],
                              0.006, sections=6))
    tilt = _u(rng, 20, 70)   # head axis tilted from straight down towards +z
    head_r, head_h = _u(rng, 0.05, 0.09), _u(rng, 0.08, 0.14)
    head = _shade(rng, head_r, head_h, _pick(rng, ("bell", "cone", "dome")), (0, 0, 0))
    hv, hf = head
    top_y = hv[:, 1].max()
    parts.append(transform((hv - np.array([0, top_y, 0]), hf), rot_x(tilt), p2))
    return parts
