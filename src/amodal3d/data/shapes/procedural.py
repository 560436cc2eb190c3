"""Procedural ShapeNet-like meshes of the 13 categories.

``generate_mesh(category, rng)`` draws one random object: a structural variant of the category (a
swivel chair, a pickup, a sailboat...) and continuous parameters (sizes, proportions, angles,
optional parts). Objects are assembled from the light primitives of
:mod:`amodal3d.data.shapes.primitives` (no booleans: only silhouettes, depth and shading are used),
each primitive its own part (``mesh.metadata["part_ids"]``, int32 (F,)), and returned in the
ShapeNetCore v2 ``model_normalized`` frame: +Y up, the object's front towards +Z, bounding box centred
at the origin with a diagonal of 1. Objects whose real counterparts are bilaterally symmetric are
built symmetric about x = 0 (see :data:`ASYMMETRIC_VARIANTS` for the exceptions).

Generators build in metres (a chair seat is ~0.45 m high) before normalisation; every random
quantity comes from the given ``numpy.random.Generator``, so a seed reproduces a mesh exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import trimesh

from amodal3d import CATEGORY_NAMES
from amodal3d.data.shapes.primitives import (
    Part,
    assemble,
    box,
    box_between,
    circle,
    cylinder,
    disc,
    ellipsoid,
    grid_sheet,
    lathe,
    loft,
    mirrored_pair,
    normalize_mesh,
    prism,
    profile_xz,
    profile_zy,
    revolve_loop,
    rot_x,
    rot_y,
    rot_z,
    rounded_box,
    rounded_rect,
    sheet,
    transform,
    tube,
)

__all__ = ["ASYMMETRIC_VARIANTS", "VARIANTS", "generate_mesh", "normalize_mesh"]

VARIANTS: dict[str, tuple[str, ...]] = {
    "airplane": ("airliner", "straight", "delta", "tail_engine"),
    "bench": ("park", "backless", "picnic", "wooden"),
    "dresser": ("drawers", "doors", "sideboard", "wardrobe"),
    "car": ("sedan", "hatchback", "suv", "pickup", "sports"),
    "chair": ("four_leg", "swivel", "sled", "armchair"),
    "display": ("monitor", "arm", "tv", "crt"),
    "lamp": ("floor", "desk", "pendant", "table"),
    "speaker": ("bookshelf", "tower", "cylindrical", "subwoofer"),
    "rifle": ("assault", "sniper", "shotgun", "bullpup"),
    "sofa": ("two_seat", "three_seat", "sectional", "armless"),
    "table": ("four_leg", "pedestal", "trestle", "panel"),
    "phone": ("smartphone", "flip", "desk", "candybar"),
    "vessel": ("sailboat", "motorboat", "ship", "submarine"),
}
"""Structural variants per category (``generate_mesh(..., variant=...)`` forces one)."""

ASYMMETRIC_VARIANTS: frozenset[tuple[str, str]] = frozenset({("sofa", "sectional")})
"""(category, variant) pairs that are not mirror symmetric about x = 0 (an L-shaped sofa)."""


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# chair
# ----------------------------------------------------------------------------------------------

def _chair(rng: np.random.Generator, variant: str) -> list[Part]:
    """Dining / office / cantilever chairs and an upholstered armchair."""
    if variant == "armchair":
        return _armchair(rng)
    parts: list[Part] = []
    w, d = _u(rng, 0.40, 0.54), _u(rng, 0.38, 0.50)
    h = _u(rng, 0.42, 0.50)
    t = _u(rng, 0.025, 0.06) if variant != "swivel" else _u(rng, 0.06, 0.10)
    back_h = _u(rng, 0.30, 0.62) if variant != "swivel" else _u(rng, 0.40, 0.72)
    recline = _u(rng, 3.0, 14.0)
    style = _pick(rng, ("solid", "solid", "slats", "rails", "spindles")) if variant == "four_leg" \
        else ("solid" if variant == "swivel" else _pick(rng, ("solid", "solid", "slats")))
    square = variant == "four_leg" and _chance(rng, 0.5)
    leg_r = _u(rng, 0.012, 0.024) if variant == "four_leg" else 0.011

    # seat: a rounded trapezoid in plan, wider at the front
    corner_r = _u(rng, 0.01, 0.12)
    taper = _u(rng, 0.0, 0.12)   # the seat narrows towards the back
    plan = rounded_rect(w, d, corner_r, 3)
    plan[:, 0] *= 1.0 - taper * (0.5 - plan[:, 1] / d)
    wb = w * (1.0 - taper)       # seat width at the back
    if variant == "swivel":
        parts.append(rounded_box((w, t, d), 0.3 * t, (0, h - t / 2, 0), corner=0.06))
    else:
        parts.append(profile_xz(plan, h - t, h))

    # back, in its own frame: origin at the back edge of the seat top, y up the (reclined) back
    pivot = np.array([0.0, h - (0.0 if variant != "swivel" else 0.02), -d / 2 + 0.01])
    back_rot = rot_x(-recline)
    gap = 0.0 if style == "solid" and _chance(rng, 0.5) else _u(rng, 0.04, 0.14)
    bw = wb * _u(rng, 0.85, 1.03) if variant != "swivel" else w * _u(rng, 0.8, 1.0)
    post_x = bw / 2 - 0.02
    top_shape = _pick(rng, ("flat", "arched", "rounded", "notched"))

    def to_world(part: Part) -> Part:
        return transform(part, back_rot, pivot)

    def back_point(x: float, s: float) -> np.ndarray:
        return pivot + back_rot @ np.array([x, s, -0.015])

    if style == "solid":
        bt = _u(rng, 0.018, 0.05) if variant != "swivel" else _u(rng, 0.05, 0.09)
        panel_h = back_h - gap
        if variant == "swivel":
            parts.append(to_world(rounded_box((bw, panel_h, bt), 0.3 * bt, (0, gap + panel_h / 2, -bt / 2),
                                              corner=_u(rng, 0.03, 0.15))))
        else:
            outline = _panel_xy(bw, panel_h, top_shape, rng) + np.array([0.0, gap])
            parts.append(to_world(prism(outline, -bt, 0.0)))
    else:
        rail_h = _u(rng, 0.04, 0.1)
        parts.append(to_world(box((2 * post_x, rail_h, 0.022), (0, back_h - rail_h / 2, -0.015))))
        if style == "slats":
            n = int(rng.integers(2, 6))
            parts.append(to_world(box((2 * post_x, 0.03, 0.02), (0, gap + 0.015, -0.015))))
            for x in np.linspace(-post_x, post_x, n + 2)[1:-1]:
                parts.append(to_world(box((_u(rng, 0.02, 0.05), back_h - rail_h - gap, 0.015),
                                          (x, (back_h - rail_h + gap) / 2, -0.015))))
        elif style == "rails":
            for s in np.linspace(gap, back_h - rail_h, int(rng.integers(2, 5)), endpoint=False)[1:]:
                parts.append(to_world(box((2 * post_x, 0.035, 0.02), (0, s, -0.015))))
        else:  # spindles
            for x in np.linspace(-post_x, post_x, int(rng.integers(5, 9)))[1:-1]:
                parts.append(cylinder(back_point(x, 0.0), back_point(x, back_h - rail_h / 2), 0.007,
                                      sections=6))

    # base
    if variant == "four_leg":
        inset = _u(rng, 0.02, 0.05) + 0.3 * corner_r + leg_r
        splay = _u(rng, 0.0, 0.04)
        xl, zf, zb = w / 2 - inset, d / 2 - inset, -d / 2 + inset
        xlb = wb / 2 - inset
        leg_taper = _u(rng, 0.55, 1.0)
        front = _leg((xl + splay, 0, zf + splay), (xl, h - t, zf), leg_r * leg_taper, leg_r, square)
        parts += _both(front)
        posts_up = style != "solid" or gap > 0
        if posts_up:
            top = back_point(post_x, back_h)
            knee = np.array([post_x, h - t, zb])
            back_leg = tube([(post_x + splay, 0, zb - splay), knee, back_point(post_x, 0.0), top],
                            [leg_r * leg_taper, leg_r, leg_r * 0.9,
                             leg_r * 0.8], sections=4 if square else 10)
        else:
            back_leg = _leg((xlb + splay, 0, zb - splay), (xlb, h - t, zb), leg_r * leg_taper, leg_r, square)
        parts += _both(back_leg)
        if _chance(rng, 0.5):  # stretchers
            ys = _u(rng, 0.08, 0.2)
            rr = leg_r * 0.5
            parts += _both(cylinder((xl + splay * 0.7, ys, zf), (xlb + splay * 0.7, ys, zb), rr, sections=6))
            parts.append(cylinder((-(xl + xlb) / 2, ys + 0.03, 0), ((xl + xlb) / 2, ys + 0.03, 0), rr,
                                  sections=6))
        if _chance(rng, 0.6):  # apron under the seat
            ah = _u(rng, 0.03, 0.08)
            parts.append(box((2 * xl, ah, 0.018), (0, h - t - ah / 2, zf)))
            parts += _both(cylinder((xl, h - t - ah / 2, zf), (xlb, h - t - ah / 2, zb), ah / 2, sections=4))
    elif variant == "swivel":
        hub_y, spoke_r = _u(rng, 0.08, 0.12), _u(rng, 0.26, 0.33)
        parts.append(cylinder((0, hub_y, 0), (0, h - t - 0.04, 0), _u(rng, 0.018, 0.028)))
        parts.append(cylinder((0, hub_y - 0.03, 0), (0, hub_y + 0.15, 0), 0.035, 0.03))
        parts.append(box((0.18, 0.05, 0.22), (0, h - t - 0.03, -0.01)))  # tilt mechanism
        for k in range(5):
            a = np.radians(90.0 + 72.0 * k)
            tip = np.array([spoke_r * np.cos(a), 0.065, spoke_r * np.sin(a)])
            parts.append(tube([(0, hub_y, 0), tip], [0.022, 0.014], sections=6, aspect=0.7))
            parts.append(disc((tip[0], 0.028, tip[2]), 0.028, 0.022, axis="x", sections=10))
            parts.append(cylinder((tip[0], 0.04, tip[2]), tip, 0.008, sections=6))
        # back support bar
        parts.append(tube(_fillet([(0, h - t - 0.02, -0.08), (0, h - t - 0.02, -d / 2 - 0.06),
                                   back_point(0, gap + 0.1) + np.array([0, 0, -0.06])], 0.06),
                          0.02, sections=6, aspect=0.4))
    else:  # sled: one bent tube per side (front leg, floor runner, rear leg)
        x = w / 2 - 0.02
        zf, zb = d / 2 - 0.04, -d / 2 + 0.04
        r = _u(rng, 0.009, 0.013)
        path = _fillet([(x, h - t, zf), (x, 0.012, zf + _u(rng, 0.0, 0.05)),
                        (x, 0.012, zb - _u(rng, 0.0, 0.06)), (x, h - t, zb), back_point(post_x, 0.0),
                        back_point(post_x, back_h * 0.8)], 0.05)
        parts += _both(tube(path, r, sections=8))
        parts += _both(cylinder((x, h - t - 0.01, zf), (x, h - t - 0.01, zb), r, sections=8))

    if _chance(rng, 0.35):  # arms
        ah = h + _u(rng, 0.17, 0.24)
        ax = w / 2 + _u(rng, -0.01, 0.03)
        zf = d / 2 - _u(rng, 0.0, 0.1)
        pad = rounded_box((0.05, 0.025, zf + d / 2), 0.008, (ax, ah, (zf - d / 2) / 2))
        parts += _both(pad)
        parts += _both(cylinder((ax, h - 0.01, zf - 0.05), (ax, ah, zf - 0.05), 0.012, sections=8))
        if variant == "swivel":
            parts += _both(box((0.03, 0.04, 0.2), (ax, h - t, 0.0)))
    return parts


def _armchair(rng: np.random.Generator) -> list[Part]:
    """Upholstered armchair (club / wingback) on short legs or a plinth."""
    parts: list[Part] = []
    arm_w = _u(rng, 0.1, 0.2)
    seat_w = _u(rng, 0.5, 0.62)
    w = seat_w + 2 * arm_w
    d = _u(rng, 0.72, 0.9)
    leg_h = _pick(rng, (0.0, _u(rng, 0.06, 0.16)))
    base_top = _u(rng, 0.3, 0.36)
    seat_top = base_top + _u(rng, 0.08, 0.14)
    back_t = _u(rng, 0.12, 0.2)
    back_top = _u(rng, 0.8, 1.05)
    arm_top = _u(rng, 0.56, 0.68)
    r = _u(rng, 0.02, 0.05)
    parts.append(rounded_box((w, base_top - leg_h, d), r, (0, (base_top + leg_h) / 2, 0)))
    cushion_d = d - back_t - 0.02
    parts.append(rounded_box((seat_w - 0.01, seat_top - base_top, cushion_d), 0.04,
                             (0, (seat_top + base_top) / 2, d / 2 - cushion_d / 2)))
    back_rot = rot_x(-_u(rng, 4, 12))
    back = rounded_box((w - 0.02, back_top - base_top, back_t), r,
                       (0, (back_top - base_top) / 2, 0), corner=_u(rng, 0.04, 0.15))
    parts.append(transform(back, back_rot, (0, base_top, -d / 2 + back_t / 2)))
    arm_d = d * _u(rng, 0.8, 1.0)
    if _chance(rng, 0.5):  # rolled arm
        arm = [box((arm_w * 0.8, arm_top - base_top, arm_d), (w / 2 - arm_w * 0.4, (arm_top + base_top) / 2,
                                                             d / 2 - arm_d / 2)),
               cylinder((w / 2 - arm_w / 2, arm_top, d / 2 - arm_d), (w / 2 - arm_w / 2, arm_top, d / 2),
                        arm_w / 2, sections=12)]
    else:
        arm = [rounded_box((arm_w, arm_top - base_top + 0.04, arm_d), r,
                           (w / 2 - arm_w / 2, (arm_top + base_top) / 2 - 0.02, d / 2 - arm_d / 2))]
    for a in arm:
        parts += _both(a)
    if _chance(rng, 0.4):  # wings
        wing = profile_zy([(-d / 2 + back_t, arm_top - 0.05), (-d / 2 + back_t + 0.22, arm_top - 0.02),
                           (-d / 2 + back_t + 0.2, back_top - 0.1), (-d / 2 + back_t, back_top - 0.04)], 0.07,
                          x=w / 2 - 0.05)
        parts += _both(wing)
    if leg_h > 0:
        xl, zl = w / 2 - 0.05, d / 2 - 0.05
        square = _chance(rng, 0.5)
        for z in (zl, -zl):
            parts += _both(_leg((xl, 0, z), (xl, leg_h + 0.01, z), 0.014, 0.02, square))
    return parts


# ----------------------------------------------------------------------------------------------
# table
# ----------------------------------------------------------------------------------------------

def _table(rng: np.random.Generator, variant: str) -> list[Part]:
    """Dining / coffee / side tables and desks."""
    parts: list[Part] = []
    height = _pick(rng, (_u(rng, 0.70, 0.78), _u(rng, 0.70, 0.78), _u(rng, 0.38, 0.5)))
    t = _u(rng, 0.02, 0.06)
    round_top = variant == "pedestal" and _chance(rng, 0.75) or variant == "four_leg" and _chance(rng, 0.2)
    if round_top:
        r = _u(rng, 0.35, 0.65)
        length, depth = 2 * r, 2 * r * (_u(rng, 1.0, 1.6) if variant == "pedestal" and _chance(rng, 0.3)
                                         else 1.0)
        length, depth = max(length, depth), min(length, depth)
        parts.append(transform(lathe([(1.0, -t), (1.0, 0.0)], sections=28), None, (0, height, 0),
                               (length / 2, 1.0, depth / 2)))
    else:
        length = _u(rng, 0.8, 2.0) if variant != "pedestal" else _u(rng, 0.7, 1.1)
        depth = min(length, _u(rng, 0.55, 1.0))
        parts.append(rounded_box((length, t, depth), min(0.008, t / 3), (0, height - t / 2, 0),
                                 corner=_pick(rng, (0.01, _u(rng, 0.02, 0.2)))))
    under = height - t
    if variant == "four_leg":
        square = _chance(rng, 0.5)
        leg_r = _u(rng, 0.015, 0.04)
        inset = _u(rng, 0.03, 0.12)
        if round_top:
            xl = zl = (length / 2) * 0.62
        else:
            xl, zl = length / 2 - inset, depth / 2 - inset
        splay = _pick(rng, (0.0, _u(rng, 0.0, 0.06)))
        taper = _u(rng, 0.5, 1.0)
        for z in (zl, -zl):
            parts += _both(_leg((xl + splay, 0, z + np.sign(z) * splay), (xl, under, z), leg_r * taper, leg_r,
                                square))
        if _chance(rng, 0.65):  # apron
            ah = _u(rng, 0.05, 0.12)
            parts += [box((2 * xl, ah, 0.02), (0, under - ah / 2, s * zl)) for s in (1, -1)]
            parts += _both(box((0.02, ah, 2 * zl), (xl, under - ah / 2, 0)))
        if _chance(rng, 0.3):  # lower shelf
            sy = _u(rng, 0.08, 0.25) * height
            parts.append(box((2 * xl + 0.02, 0.02, 2 * zl + 0.02), (0, sy, 0)))
    elif variant == "pedestal":
        col_r = _u(rng, 0.04, 0.09)
        foot_y = _u(rng, 0.03, 0.08)
        bulge = _u(rng, 1.0, 1.8)
        parts.append(lathe([(col_r * 1.4, foot_y), (col_r, foot_y + 0.08), (col_r * bulge, 0.35 * under),
                            (col_r, 0.7 * under), (col_r * 1.3, under - 0.02), (col_r * 1.6, under)],
                           sections=14))
        if _chance(rng, 0.5):
            base_r = _u(rng, 0.18, 0.3)
            parts.append(lathe([(0, 0), (base_r, 0.0), (base_r, 0.015), (col_r * 1.5, foot_y + 0.01),
                                (0, foot_y + 0.01)], sections=20))
        else:
            n_feet = _pick(rng, (3, 4, 4))
            reach = _u(rng, 0.22, 0.36)
            for k in range(n_feet):
                a = np.radians(90.0 + 360.0 * k / n_feet)
                direction = np.array([np.cos(a), 0.0, np.sin(a)])
                foot = tube([(0, foot_y + 0.04, 0), direction * reach + np.array([0, 0.015, 0])],
                            [0.03, 0.015], sections=6, aspect=0.6)
                parts.append(foot)
    elif variant == "trestle":
        xs = length / 2 - _u(rng, 0.1, 0.25)
        foot_d = depth * _u(rng, 0.7, 0.95)
        board_t = _u(rng, 0.04, 0.08)
        if _chance(rng, 0.5):  # A-frame: two splayed legs per end
            spread = foot_d * 0.42
            for sz in (1, -1):
                parts += _both(box((board_t, under * 1.03, 0.06), (xs, under / 2, sz * spread / 2),
                                   rot_x(-sz * np.degrees(np.arctan2(spread / 2, under)))))
        else:  # solid board
            parts += _both(box((board_t, under - 0.08, _u(rng, 0.12, 0.3)), (xs, under / 2, 0)))
        parts += _both(box((board_t * 1.3, 0.06, foot_d), (xs, 0.03, 0)))
        parts += _both(box((board_t * 1.3, 0.05, foot_d * 0.85), (xs, under - 0.025, 0)))
        parts.append(box((2 * xs, 0.07, 0.04), (0, _u(rng, 0.15, 0.45) * under, 0)))
    else:  # panel: slab ends, optional modesty panel and drawer
        pt = _u(rng, 0.02, 0.05)
        xs = length / 2 - pt / 2 - _pick(rng, (0.0, _u(rng, 0.0, 0.1)))
        pd = depth - _pick(rng, (0.0, _u(rng, 0.02, 0.1)))
        parts += _both(box((pt, under, pd), (xs, under / 2, 0)))
        if _chance(rng, 0.6):
            ph = _u(rng, 0.2, 0.5) * under
            parts.append(box((2 * xs, ph, 0.018), (0, under - ph / 2 - _u(rng, 0, 0.1), -pd / 2 + 0.04)))
        if _chance(rng, 0.4):
            parts.append(box((2 * xs - pt, 0.1, pd * 0.9), (0, under - 0.05, 0)))
            parts.append(box((0.12, 0.015, 0.015), (0, under - 0.05, pd * 0.45 + 0.01)))
    return parts


# ----------------------------------------------------------------------------------------------
# bench
# ----------------------------------------------------------------------------------------------

def _slats(length: float, z0: float, z1: float, y: float, n: int, thick: float, gap_frac: float
           ) -> list[Part]:
    """``n`` boards along x of length ``length`` covering z0..z1 (z0 < z1), top at height ``y``."""
    pitch = (z1 - z0) / n
    width = pitch * (1.0 - gap_frac)
    return [box((length, thick, width), (0, y - thick / 2, z0 + pitch * (i + 0.5))) for i in range(n)]


def _bench(rng: np.random.Generator, variant: str) -> list[Part]:
    """Park bench, backless bench, picnic table with benches, solid wooden bench."""
    parts: list[Part] = []
    length = _u(rng, 1.1, 1.9)
    h = _u(rng, 0.40, 0.47)
    if variant == "park":
        d = _u(rng, 0.40, 0.52)
        zf, zb = d / 2, -d / 2
        back_h, recline = _u(rng, 0.3, 0.48), np.radians(_u(rng, 8, 20))
        sin_r, cos_r = np.sin(recline), np.cos(recline)
        top_in = (zb + 0.05 - back_h * sin_r, h - 0.03 + back_h * cos_r)
        frame = [(zf + 0.03, 0.0), (zf + 0.03, h - 0.03), (zb + 0.05, h - 0.03), top_in,
                 (top_in[0] - 0.06, top_in[1] - 0.01), (zb - 0.02, h - 0.06), (zb - 0.05, 0.0),
                 (zb + 0.03, 0.0), (zb + 0.05, h - 0.13), (zf - 0.04, h - 0.13), (zf - 0.04, 0.0)]
        fw = _u(rng, 0.03, 0.06)
        xs = [length / 2 - _u(rng, 0.06, 0.2)]
        for x in xs:
            parts += _both(profile_zy(frame, fw, x))
        if length > 1.5 and _chance(rng, 0.6):
            parts.append(profile_zy(frame, fw, 0.0))
        n, thick = int(rng.integers(3, 7)), _u(rng, 0.02, 0.04)
        parts += _slats(length, zb + 0.02, zf + 0.02, h, n, thick, _u(rng, 0.15, 0.4))
        nb = int(rng.integers(2, 5))
        back_rot = rot_x(-np.degrees(recline))
        pitch = (back_h - 0.06) / nb
        for i in range(nb):
            s_ = 0.08 + pitch * (i + 0.5)
            centre = np.array([0.0, h - 0.03, zb + 0.02]) + back_rot @ np.array([0.0, s_, 0.0])
            parts.append(box((length, pitch * _u(rng, 0.55, 0.85), thick), centre, back_rot))
        if _chance(rng, 0.6):  # armrests
            x = xs[0] + fw / 2 + 0.01
            ay = h + _u(rng, 0.18, 0.25)
            parts += _both(tube(_fillet([(x, h - 0.03, zf), (x, ay, zf + 0.02),
                                         (x, ay + 0.02, zb + 0.02 - 0.2 * sin_r)], 0.06), 0.016, sections=8))
    elif variant == "backless":
        d = _u(rng, 0.3, 0.45)
        t = _u(rng, 0.03, 0.07)
        if _chance(rng, 0.5):
            parts.append(rounded_box((length, t, d), 0.008, (0, h - t / 2, 0), corner=_u(rng, 0.01, 0.1)))
        else:
            parts += _slats(length, -d / 2, d / 2, h, int(rng.integers(3, 6)), t, _u(rng, 0.1, 0.3))
        support = _pick(rng, ("legs", "slabs", "frame"))
        xl = length / 2 - _u(rng, 0.05, 0.2)
        if support == "legs":
            square, r = _chance(rng, 0.5), _u(rng, 0.02, 0.035)
            splay = _u(rng, 0.0, 0.05)
            for z in (d / 2 - 0.05, -d / 2 + 0.05):
                parts += _both(_leg((xl + splay, 0, z + np.sign(z) * splay * 0.5), (xl, h - t, z), r * 0.7, r,
                                    square))
            if _chance(rng, 0.5):
                parts.append(box((2 * xl, 0.04, 0.03), (0, _u(rng, 0.1, 0.2), 0)))
        elif support == "slabs":
            parts += _both(box((_u(rng, 0.04, 0.08), h - t, d * _u(rng, 0.8, 1.0)), (xl, (h - t) / 2, 0)))
        else:
            z = d / 2 - 0.03
            path = _fillet([(xl, h - t, z), (xl, 0.015, z), (xl, 0.015, -z), (xl, h - t, -z)], 0.04)
            parts += _both(tube(path, _u(rng, 0.012, 0.02), sections=4 if _chance(rng, 0.5) else 8))
    elif variant == "picnic":
        top_h, top_d = _u(rng, 0.72, 0.78), _u(rng, 0.6, 0.8)
        seat_z = top_d / 2 + _u(rng, 0.18, 0.3)
        seat_d = _u(rng, 0.22, 0.3)
        thick = _u(rng, 0.03, 0.05)
        parts += _slats(length, -top_d / 2, top_d / 2, top_h, int(rng.integers(3, 7)), thick, 0.12)
        for sz in (1, -1):
            for slat in _slats(length, seat_z - seat_d / 2, seat_z + seat_d / 2, h, 2, thick, 0.15):
                parts.append(transform(slat, scale=(1, 1, sz)))
        xl = length / 2 - _u(rng, 0.15, 0.3)
        lw = _u(rng, 0.04, 0.07)
        beam_y = h - thick - 0.04
        parts += _both(box((lw, 0.08, 2 * seat_z + seat_d), (xl, beam_y, 0)))
        parts += _both(box((lw, 0.06, top_d * 0.9), (xl, top_h - thick - 0.03, 0)))
        foot = seat_z + _u(rng, -0.05, 0.05)
        for sz in (1, -1):
            leg = tube([(xl, 0.0, sz * foot), (xl, top_h - thick, sz * top_d * 0.2)], 0.045, sections=4,
                       aspect=lw / 0.09)
            parts += _both(leg)
    else:  # wooden: solid side boards carrying seat, backrest and armrests
        d = _u(rng, 0.42, 0.55)
        zf, zb = d / 2, -d / 2
        back_top = h + _u(rng, 0.3, 0.5)
        lean = _u(rng, 0.03, 0.12)
        arm = _chance(rng, 0.6)
        arm_h = h + _u(rng, 0.18, 0.25)
        side = [(zf, 0.0), (zf, arm_h if arm else h), (zb + 0.08 - lean * 0.4, arm_h if arm else h),
                (zb - lean + 0.06, back_top), (zb - lean, back_top), (zb, h), (zb, 0.0),
                (zb + 0.08, 0.0), (zb + 0.08 + 0.05, 0.1), (zf - 0.13, 0.1), (zf - 0.08, 0.0)]
        bw = _u(rng, 0.04, 0.07)
        xs = length / 2 - bw / 2
        parts += _both(profile_zy(side, bw, xs))
        t = _u(rng, 0.03, 0.05)
        parts.append(box((2 * xs - bw, t, d - 0.02), (0, h - t / 2, 0.01)))
        tilt = np.degrees(np.arctan2(lean, back_top - h))
        nb = int(rng.integers(1, 4))
        for i in range(nb):
            frac = (i + 0.5) / nb
            y = h + 0.08 + frac * (back_top - h - 0.1)
            z = zb - lean * (y - h) / (back_top - h) + 0.04
            parts.append(box((2 * xs - bw, (back_top - h - 0.1) / nb * 0.8, 0.025), (0, y, z), rot_x(-tilt)))
    return parts


# ----------------------------------------------------------------------------------------------
# sofa
# ----------------------------------------------------------------------------------------------

def _sofa(rng: np.random.Generator, variant: str) -> list[Part]:
    """Two / three seat sofas, an L-shaped sectional and an armless sofa."""
    parts: list[Part] = []
    n = {"two_seat": 2, "three_seat": 3}.get(variant, int(rng.integers(2, 4)))
    seat_w = _u(rng, 0.52, 0.7)
    arm_w = 0.0 if variant == "armless" else _u(rng, 0.1, 0.26)
    w = n * seat_w + 2 * arm_w
    d = _u(rng, 0.78, 1.0)
    leg_h = _pick(rng, (0.0, _u(rng, 0.04, 0.1), _u(rng, 0.1, 0.2)))
    base_top = leg_h + _u(rng, 0.2, 0.3)
    seat_top = base_top + _u(rng, 0.09, 0.16)
    back_top = seat_top + (_u(rng, 0.3, 0.5) if variant != "armless" else _u(rng, 0.25, 0.4))
    arm_top = min(seat_top + _u(rng, 0.12, 0.26), back_top - 0.03)
    back_t = _u(rng, 0.12, 0.2)
    r = _u(rng, 0.015, 0.05)
    chaise = _u(rng, 0.55, 0.85) if variant == "sectional" else 0.0
    side = 1.0 if rng.random() < 0.5 else -1.0            # which end carries the chaise

    parts.append(rounded_box((w, base_top - leg_h, d), r, (0, (base_top + leg_h) / 2, 0)))
    if chaise:
        cx = side * (w / 2 - arm_w - seat_w / 2)
        parts.append(rounded_box((seat_w + arm_w, base_top - leg_h, chaise + 0.05),
                                 r, (cx + side * arm_w / 2, (base_top + leg_h) / 2,
                                     d / 2 + chaise / 2 - 0.025)))
    # back frame and cushions
    recline = rot_x(-_u(rng, 6, 16))
    parts.append(transform(rounded_box((w - 0.01, back_top - base_top, back_t), r,
                                       (0, (back_top - base_top) / 2, 0),
                                       corner=r), recline, (0, base_top, -d / 2 + back_t / 2)))
    cushion_d = d - back_t - _u(rng, 0.0, 0.05)
    cushion_h = seat_top - base_top
    one_piece = _chance(rng, 0.2)
    seat_widths = [n * seat_w] if one_piece else [seat_w] * n
    x0 = -n * seat_w / 2
    back_cushions = _chance(rng, 0.7)
    bc_t = _u(rng, 0.1, 0.2)
    for sw in seat_widths:
        cx = x0 + sw / 2
        extra = chaise if chaise and np.sign(cx) == side and abs(cx) > (n * seat_w / 2 - seat_w) else 0.0
        cd = cushion_d + extra
        parts.append(rounded_box((sw - 0.012, cushion_h, cd), _u(rng, 0.02, 0.05),
                                 (cx, base_top + cushion_h / 2, d / 2 - cd / 2 + extra)))
        if back_cushions:
            bh = back_top - seat_top - _u(rng, 0.0, 0.06)
            c = rounded_box((sw - 0.015, bh, bc_t), 0.04, (0, bh / 2, bc_t / 2))
            parts.append(transform(c, recline, (cx, seat_top - 0.01, -d / 2 + back_t)))
        x0 += sw
    # arms
    if arm_w > 0:
        style = _pick(rng, ("track", "roll", "slope"))
        ad = d
        for s in (1.0, -1.0):
            extra = chaise if chaise and s == side else 0.0
            cz = extra / 2
            ax = s * (w / 2 - arm_w / 2)
            if style == "track":
                parts.append(rounded_box((arm_w, arm_top - leg_h, ad + extra), r,
                                         (ax, (arm_top + leg_h) / 2, cz)))
            elif style == "roll":
                parts.append(rounded_box((arm_w * 0.8, arm_top - leg_h - arm_w * 0.3, ad + extra), r,
                                         (ax - s * arm_w * 0.1, (arm_top - arm_w * 0.3 + leg_h) / 2, cz)))
                parts.append(cylinder((ax, arm_top - arm_w * 0.45, cz + (ad + extra) / 2),
                                      (ax, arm_top - arm_w * 0.45,
                                       cz - (ad + extra) / 2), arm_w * 0.5, sections=14))
            else:  # slope: higher at the back
                zf, zb = cz + (ad + extra) / 2, cz - (ad + extra) / 2
                prof = [(zf, leg_h), (zf, arm_top - 0.05), (zf - 0.1, arm_top), (zb, arm_top + 0.05),
                        (zb, leg_h)]
                parts.append(profile_zy(prof, arm_w, ax))
    # legs
    if leg_h > 0:
        square = _chance(rng, 0.5)
        lr = _u(rng, 0.015, 0.03)
        xl, zl = w / 2 - 0.06, d / 2 - 0.06
        for z in (zl, -zl):
            parts += _both(_leg((xl, 0, z), (xl, leg_h + 0.01, z), lr * 0.7, lr, square))
        if chaise:
            parts.append(_leg((side * xl, 0, d / 2 + chaise - 0.06),
                              (side * xl, leg_h + 0.01, d / 2 + chaise - 0.06),
                              lr * 0.7, lr, square))
    if arm_w > 0 and _chance(rng, 0.4):  # throw pillows
        ps = _u(rng, 0.3, 0.42)
        for s in (1.0, -1.0):
            pillow = rounded_box((ps, ps, 0.1), 0.04, (0, 0, 0), rot_x(-20) @ rot_z(s * 10))
            parts.append(transform(pillow, None,
                                   (s * (n * seat_w / 2 - ps / 2 - 0.03), seat_top + ps / 2 - 0.02,
                                                  -d / 2 + back_t + bc_t * back_cushions + 0.07)))
    return parts


# ----------------------------------------------------------------------------------------------
# dresser (cabinet)
# ----------------------------------------------------------------------------------------------

def _fronts(rng: np.random.Generator, cells: list[tuple[float, float, float, float]], z: float, kind: str,
            handle: str) -> list[Part]:
    """Drawer or door fronts protruding from the carcass front at ``z``; ``cells`` (x0, x1, y0, y1)."""
    parts: list[Part] = []
    gap = 0.006
    depth = 0.018
    for x0, x1, y0, y1 in cells:
        parts.append(box((x1 - x0 - gap, y1 - y0 - gap, depth),
                         ((x0 + x1) / 2, (y0 + y1) / 2, z + depth / 2)))
        zf = z + depth
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if kind == "door" and abs(cx) < 1e-6:  # single door: a centred pull near the top keeps symmetry
            hl = min(0.15, 0.3 * (x1 - x0))
            parts.append(cylinder((cx - hl / 2, y1 - 0.05, zf + 0.025), (cx + hl / 2, y1 - 0.05, zf + 0.025),
                                  0.007, sections=6))
            for xx in (cx - hl / 2 + 0.01, cx + hl / 2 - 0.01):
                parts.append(cylinder((xx, y1 - 0.05, zf), (xx, y1 - 0.05, zf + 0.025), 0.005, sections=6))
        elif kind == "door":  # handle near the meeting edge (the side towards x = 0)
            hx = x1 - 0.04 if cx < 0 else x0 + 0.04
            if handle == "knob":
                parts.append(ellipsoid((hx, cy, zf + 0.015), (0.015, 0.015, 0.015), rows=4, sections=8))
            elif handle != "none":
                hl = min(0.25, 0.3 * (y1 - y0))
                parts.append(cylinder((hx, cy - hl / 2, zf + 0.03), (hx, cy + hl / 2, zf + 0.03), 0.007,
                                      sections=6))
                for yy in (cy - hl / 2 + 0.01, cy + hl / 2 - 0.01):
                    parts.append(cylinder((hx, yy, zf), (hx, yy, zf + 0.03), 0.005, sections=6))
        else:
            if handle == "knob":
                ks = [cx] if x1 - x0 < 0.5 else [x0 + (x1 - x0) * 0.25, x0 + (x1 - x0) * 0.75]
                parts += [ellipsoid((k, cy, zf + 0.015), (0.015, 0.015, 0.015), rows=4,
                                    sections=8) for k in ks]
            elif handle == "bar":
                hl = min(0.3, 0.4 * (x1 - x0))
                parts.append(cylinder((cx - hl / 2, cy, zf + 0.03), (cx + hl / 2, cy, zf + 0.03), 0.007,
                                      sections=6))
                for xx in (cx - hl / 2 + 0.01, cx + hl / 2 - 0.01):
                    parts.append(cylinder((xx, cy, zf), (xx, cy, zf + 0.03), 0.005, sections=6))
            elif handle == "cup":
                hl = min(0.12, 0.3 * (x1 - x0))
                parts.append(box((hl, 0.025, 0.02), (cx, cy + 0.01, zf + 0.01)))
    return parts


def _dresser(rng: np.random.Generator, variant: str) -> list[Part]:
    """Chest of drawers, cupboard with doors, sideboard, wardrobe; on legs, a plinth or feet."""
    parts: list[Part] = []
    if variant == "drawers":
        w, h, d = _u(rng, 0.6, 1.5), _u(rng, 0.7, 1.3), _u(rng, 0.4, 0.55)
    elif variant == "doors":
        w, h, d = _u(rng, 0.5, 1.2), _u(rng, 0.6, 1.4), _u(rng, 0.35, 0.55)
    elif variant == "sideboard":
        w, h, d = _u(rng, 1.2, 2.0), _u(rng, 0.65, 0.9), _u(rng, 0.4, 0.5)
    else:
        w, h, d = _u(rng, 0.8, 1.4), _u(rng, 1.7, 2.1), _u(rng, 0.5, 0.62)
    base = _pick(rng, ("plinth", "legs", "feet"))
    base_h = {"plinth": _u(rng, 0.04, 0.12), "legs": _u(rng, 0.1, 0.25), "feet": _u(rng, 0.04, 0.1)}[base]
    top_t = _u(rng, 0.02, 0.04) if _chance(rng, 0.7) else 0.0
    body_top = h - top_t
    parts.append(box_between(base_h, body_top, (-w / 2, w / 2), (-d / 2, d / 2)))
    if top_t:
        over = _u(rng, 0.0, 0.03)
        parts.append(rounded_box((w + 2 * over, top_t, d + 2 * over), min(0.008, top_t / 3),
                                 (0, h - top_t / 2, over)))
    if base == "plinth":
        inset = _u(rng, 0.0, 0.04)
        parts.append(box_between(0.0, base_h, (-w / 2 + inset, w / 2 - inset),
                                 (-d / 2 + inset, d / 2 - inset)))
    elif base == "legs":
        square, r = _chance(rng, 0.5), _u(rng, 0.015, 0.03)
        splay = _u(rng, 0.0, 0.03)
        for z in (d / 2 - 0.04, -d / 2 + 0.04):
            parts += _both(_leg((w / 2 - 0.04 + splay, 0, z + np.sign(z) * splay),
                                (w / 2 - 0.04, base_h + 0.01, z),
                                r * 0.6, r, square))
    else:
        for z in (d / 2 - 0.04, -d / 2 + 0.04):
            parts += _both(box((0.08, base_h, 0.08), (w / 2 - 0.04, base_h / 2, z)))
    # front layout
    m = _u(rng, 0.01, 0.04)                  # carcass frame around the fronts
    x0, x1, y0, y1 = -w / 2 + m, w / 2 - m, base_h + m, body_top - m
    handle = _pick(rng, ("bar", "knob", "cup", "none"))
    door_handle = _pick(rng, ("bar", "knob"))
    drawers: list[tuple[float, float, float, float]] = []
    doors: list[tuple[float, float, float, float]] = []
    if variant == "drawers":
        rows = int(rng.integers(3, 7))
        heights = np.linspace(1.0, _u(rng, 1.0, 1.6), rows)      # bottom drawers deeper
        edges = y1 - np.concatenate([[0.0], np.cumsum(heights[::-1])]) / heights.sum() * (y1 - y0)
        split_rows = rows if w > 1.0 and _chance(rng, 0.5) else int(rng.integers(0, 2)) if w > 0.9 else 0
        for i in range(rows):
            ya, yb = edges[i + 1], edges[i]
            if i < split_rows:
                drawers += [(x0, 0.0, ya, yb), (0.0, x1, ya, yb)]
            else:
                drawers.append((x0, x1, ya, yb))
    elif variant == "doors":
        n = 1 if w < 0.65 else 2
        split = y1 - (_u(rng, 0.12, 0.2) if _chance(rng, 0.4) else 0.0)
        if split < y1:
            drawers += [(x0 + (x1 - x0) * i / n, x0 + (x1 - x0) * (i + 1) / n, split, y1) for i in range(n)]
        doors += [(x0 + (x1 - x0) * i / n, x0 + (x1 - x0) * (i + 1) / n, y0, split) for i in range(n)]
    elif variant == "sideboard":
        n = int(rng.integers(2, 5))
        split = y1 - _u(rng, 0.12, 0.2)
        cols = [(x0 + (x1 - x0) * i / n, x0 + (x1 - x0) * (i + 1) / n) for i in range(n)]
        drawers += [(a, b, split, y1) for a, b in cols]
        doors += [(a, b, y0, split) for a, b in cols]
    else:
        n = int(rng.integers(2, 4))
        split = y0 + (_u(rng, 0.15, 0.3) if _chance(rng, 0.5) else 0.0)
        cols = [(x0 + (x1 - x0) * i / n, x0 + (x1 - x0) * (i + 1) / n) for i in range(n)]
        doors += [(a, b, split, y1) for a, b in cols]
        if split > y0:
            drawers += [(x0, 0.0, y0, split), (0.0, x1, y0, split)]
        if _chance(rng, 0.5):  # crown moulding
            parts.append(box((w + 0.04, 0.05, d + 0.02), (0, h + 0.025, 0.01)))
    parts += _fronts(rng, drawers, d / 2, "drawer", handle)
    parts += _fronts(rng, doors, d / 2, "door", door_handle)
    return parts


# ----------------------------------------------------------------------------------------------
# car
# ----------------------------------------------------------------------------------------------

# Side profiles: (t, height / roof height) with t = 0 at the rear bumper and 1 at the front bumper.
_CAR_TOP = {
    "sedan": ((0.0, 0.50), (0.03, 0.66), (0.19, 0.70), (0.31, 0.93), (0.39, 1.0), (0.58, 0.99),
              (0.71, 0.68), (0.96, 0.61), (1.0, 0.50)),
    "hatchback": ((0.0, 0.48), (0.02, 0.70), (0.09, 0.94), (0.17, 1.0), (0.54, 0.99), (0.68, 0.67),
                  (0.95, 0.60), (1.0, 0.50)),
    "suv": ((0.0, 0.50), (0.015, 0.93), (0.05, 1.0), (0.6, 0.99), (0.72, 0.68), (0.96, 0.63), (1.0, 0.52)),
    "pickup": ((0.0, 0.40), (0.34, 0.40), (0.345, 0.97), (0.37, 1.0), (0.57, 0.99), (0.67, 0.68),
               (0.96, 0.64), (1.0, 0.52)),
    "sports": ((0.0, 0.52), (0.03, 0.68), (0.14, 0.72), (0.30, 0.94), (0.40, 1.0), (0.50, 0.97),
               (0.64, 0.62), (0.95, 0.46), (1.0, 0.38)),
}
# length, width, roof height, wheel radius, ground clearance (m) and (rear, front) beltline / height
_CAR_SIZE = {
    "sedan": ((4.4, 5.0), (1.75, 1.9), (1.38, 1.5), (0.31, 0.34), (0.13, 0.16), (0.68, 0.63)),
    "hatchback": ((3.7, 4.3), (1.65, 1.8), (1.42, 1.56), (0.29, 0.32), (0.13, 0.16), (0.68, 0.63)),
    "suv": ((4.3, 4.9), (1.8, 2.0), (1.65, 1.9), (0.36, 0.41), (0.19, 0.24), (0.66, 0.62)),
    "pickup": ((5.0, 5.8), (1.85, 2.0), (1.75, 1.95), (0.37, 0.42), (0.21, 0.26), (0.64, 0.62)),
    "sports": ((4.1, 4.6), (1.85, 2.0), (1.12, 1.28), (0.32, 0.35), (0.09, 0.12), (0.66, 0.58)),
}


def _car(rng: np.random.Generator, variant: str) -> list[Part]:
    """Sedan, hatchback, SUV, pickup and sports car: lofted body and cabin, four wheels."""
    size = _CAR_SIZE[variant]
    length, width, height = (_u(rng, *size[k]) for k in range(3))
    radius, clearance = _u(rng, *size[3]), _u(rng, *size[4])
    belt_r, belt_f = (b + _u(rng, -0.03, 0.03) for b in size[5])
    ctrl = np.array(_CAR_TOP[variant])
    ctrl_t = ctrl[:, 0].copy()
    ctrl_t[1:-1] += rng.uniform(-0.015, 0.015, len(ctrl) - 2)
    ctrl_t = np.maximum.accumulate(ctrl_t)
    ctrl_y = ctrl[:, 1] + np.concatenate([[0.0], rng.uniform(-0.03, 0.03, len(ctrl) - 2), [0.0]])
    ctrl_y[ctrl[:, 1] >= 0.99] = ctrl[ctrl[:, 1] >= 0.99, 1]
    ts = np.unique(np.concatenate([np.linspace(0.0, 1.0, 15), ctrl_t, [0.008, 0.025, 0.975, 0.992]]))
    top = np.interp(ts, ctrl_t, ctrl_y) * height
    bot = np.interp(ts, [0.0, 0.1, 0.9, 1.0],
                    [0.25 * height + 0.05, clearance, clearance, 0.22 * height + 0.05])
    crown_gap = 0.03 * height
    belt = np.minimum((belt_r + (belt_f - belt_r) * ts) * height, top - crown_gap)
    edge = np.clip((np.abs(2 * ts - 1) - 0.8) / 0.2, 0.0, 1.0)
    half_w = width / 2 * (1.0 - 0.1 * edge ** 2)
    cabin_frac = _u(rng, 0.72, 0.82)
    cab = np.clip((top - belt - crown_gap) / (0.2 * height), 0.0, 1.0)
    half_c = half_w * (0.97 + (cabin_frac - 0.97) * cab)
    crown = np.minimum(0.04 * height, 0.5 * (top - belt))
    zs = (ts - 0.5) * length
    y_mid = bot + 0.3 * (belt - bot)

    def ring(points: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        return np.stack([np.stack([x, y, zs], -1) for x, y in points], axis=1)  # (K, N, 3)

    lower = ring([(-0.93 * half_w, bot), (-half_w, y_mid), (-half_w, belt), (half_w, belt), (half_w, y_mid),
                  (0.93 * half_w, bot)])
    upper = ring([(-half_w, belt), (-half_c, top - crown), (-0.5 * half_c, top), (0.5 * half_c, top),
                  (half_c, top - crown), (half_w, belt)])
    parts: list[Part] = [loft(lower), loft(upper)]

    # side windows: sheets just outside the cabin sides where the cabin is tall
    tall = np.where(top - belt > 0.2 * height)[0]
    if len(tall) >= 3:
        k = tall[1:-1] if len(tall) > 3 else tall
        lo = np.stack([half_w[k] + 0.12 * (half_c[k] - half_w[k]),
                       belt[k] + 0.12 * (top[k] - crown[k] - belt[k]),
                       zs[k]], -1)
        hi = np.stack([half_w[k] + 0.85 * (half_c[k] - half_w[k]),
                       belt[k] + 0.85 * (top[k] - crown[k] - belt[k]),
                       zs[k]], -1)
        normal = np.array([1.0, 0.0, 0.0]) * 0.012
        win = np.concatenate([lo, hi]) + normal
        n = len(k)
        jj = np.arange(n - 1)
        faces = np.concatenate([np.stack([jj, jj + 1, n + jj + 1], -1),
                                np.stack([jj, n + jj + 1, n + jj], -1)])
        parts += _both((win, faces))

    # wheels with arches
    tyre_w = _u(rng, 0.19, 0.27)
    t_rear, t_front = _u(rng, 0.17, 0.22), _u(rng, 0.78, 0.83)
    for t in (t_rear, t_front):
        z = (t - 0.5) * length
        x = width / 2 - tyre_w / 2 + 0.015
        section = [(0.62 * radius, -tyre_w / 2), (0.88 * radius, -tyre_w / 2), (radius, -0.3 * tyre_w),
                   (radius, 0.3 * tyre_w), (0.88 * radius, tyre_w / 2), (0.62 * radius, tyre_w / 2)]
        tyre = revolve_loop(section, 16, (x, radius, z), rot_z(-90))
        rim = disc((x + tyre_w / 2 - 0.03, radius, z), 0.62 * radius, 0.04, axis="x", sections=14)
        hub = disc((x + tyre_w / 2 - 0.01, radius, z), 0.15 * radius, 0.03, axis="x", sections=8)
        inner = disc((x - 0.02, radius, z), 0.62 * radius, tyre_w * 0.8, axis="x", sections=14)
        arch_r = radius + _u(rng, 0.03, 0.08)
        a = np.radians(np.linspace(5, 175, 9))
        arch = tube(np.stack([np.full(9, width / 2 - 0.01), radius + arch_r * np.sin(a),
                              z + arch_r * np.cos(a)], -1),
                    _u(rng, 0.02, 0.04), sections=6, aspect=1.0)
        for p in (tyre, rim, hub, inner, arch):
            parts += _both(p)

    # lights, mirrors
    k_front, k_rear = len(ts) - 1, 0
    face_f = top[k_front] - bot[k_front]
    face_r = top[k_rear] - bot[k_rear]
    y_hl = bot[k_front] + 0.72 * face_f
    lamp = (_u(rng, 0.1, 0.17), _u(rng, 0.1, 0.16) * face_f / 0.3, 0.02)
    for sx in (1.0, -1.0):
        parts.append(ellipsoid((sx * (half_w[k_front] - lamp[0] - 0.05), y_hl, length / 2), lamp, rows=4,
                               sections=10))
        parts.append(ellipsoid((sx * (half_w[k_rear] - 0.17), bot[k_rear] + 0.75 * face_r, -length / 2),
                               (0.12, 0.12 * face_r / 0.3, 0.02), rows=4, sections=10))
    grille_w = _u(rng, 0.3, 0.7) * half_w[k_front]
    parts.append(box((2 * grille_w, 0.3 * face_f, 0.02), (0, bot[k_front] + 0.42 * face_f, length / 2)))
    k_ws = int(np.searchsorted(ts, ctrl_t[-3]))
    zm = zs[min(k_ws, len(ts) - 1)] - 0.05
    ym = belt[min(k_ws, len(ts) - 1)] + 0.08
    parts += _both(box((0.2, 0.1, 0.05), (half_w.max() + 0.09, ym, zm)))
    parts += _both(box((0.1, 0.03, 0.03), (half_w.max() + 0.01, ym - 0.02, zm)))

    if variant == "pickup":  # open bed: side walls and tailgate
        t_bed = ctrl_t[2] if len(ctrl_t) > 2 else 0.35
        z0, z1 = -length / 2, (t_bed - 0.5) * length
        rail = _u(rng, 0.6, 0.66) * height
        floor_y = 0.40 * height
        wall = 0.05
        hw = width / 2 * 0.97
        parts += _both(box_between(floor_y - 0.01, rail, (hw - wall, hw), (z0 + 0.02, z1 + 0.01)))
        parts.append(box_between(floor_y - 0.01, rail, (-hw, hw), (z0, z0 + wall)))
    if variant == "suv" and _chance(rng, 0.5):  # roof rails
        k_roof = np.where(top > 0.97 * height)[0]
        za, zb = zs[k_roof[0]], zs[k_roof[-1]]
        xr = 0.75 * half_c.min()
        parts += _both(tube([(xr, height - 0.01, za), (xr, height + 0.05, za + 0.1),
                             (xr, height + 0.05, zb - 0.1),
                             (xr, height - 0.01, zb)], 0.018, sections=6))
    if variant == "suv" and _chance(rng, 0.3):  # spare wheel on the tailgate
        parts.append(disc((0, 0.55 * height, -length / 2 - 0.1), radius * 0.95, 0.2, axis="z", sections=16))
    if variant == "sports" and _chance(rng, 0.5):  # rear wing
        y_w = top[k_rear + 2] + _u(rng, 0.08, 0.2)
        z_w = -length / 2 + 0.15
        parts.append(box((width * 0.9, 0.02, 0.22), (0, y_w, z_w), rot_x(-8)))
        parts += _both(box((0.03, y_w - top[k_rear + 2] + 0.05, 0.08),
                           (0.5 * width * 0.6, (y_w + top[k_rear + 2]) / 2,
                                                                        z_w)))
    return parts


# ----------------------------------------------------------------------------------------------
# airplane
# ----------------------------------------------------------------------------------------------

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


def _nacelle(front: Sequence[float], length: float, radius: float) -> Part:
    """Jet engine pod along z with its intake at ``front``."""
    prof = [(0.5 * radius, 0.0), (0.8 * radius, 0.15 * length), (radius, 0.55 * length),
            (radius, 0.9 * length),
            (0.9 * radius, length)]
    f = np.asarray(front, dtype=np.float64)
    return lathe(prof, sections=14, center=f - np.array([0, 0, length]), rotation=rot_x(90))


def _propeller(hub: Sequence[float], radius: float, blades: int, phase: float) -> list[Part]:
    """Spinner and thin blades in the xy plane at ``hub`` (facing +z)."""
    h = np.asarray(hub, dtype=np.float64)
    parts = [lathe([(0.12 * radius, 0.0), (0.1 * radius, 0.1 * radius), (0.0, 0.3 * radius)], sections=10,
                   center=h, rotation=rot_x(90))]
    for k in range(blades):
        rot = rot_z(phase + 360.0 * k / blades)
        parts.append(box((0.07 * radius, radius, 0.015 * radius),
                         h + rot @ np.array([0, 0.5 * radius, 0.05 * radius]),
                         rot @ rot_y(20)))
    return parts


def _fuselage(length: float, radius: float, nose_start: float, nose_power: float, tail_end: float,
              tail_rise: float, tail_radius: float, aspect: float = 1.1) -> Part:
    """Lofted fuselage along z (nose at +z) of ``length`` and max ``radius``."""
    s = np.unique(np.concatenate([np.linspace(0.0, 1.0, 12), [0.01, 0.97, 0.99, 0.997],
                                  np.linspace(nose_start, 1.0, 6)]))
    s = s[s < 0.9995]
    r = np.full_like(s, radius)
    nose = s > nose_start
    u = (s[nose] - nose_start) / (1.0 - nose_start)
    r[nose] = radius * (1.0 - u ** nose_power) ** 0.5
    tail = s < tail_end
    v = s[tail] / tail_end
    r[tail] = radius * (tail_radius + (1 - tail_radius) * (1 - (1 - v) ** 2) ** 0.9)
    yc = np.zeros_like(s)
    yc[tail] = tail_rise * radius * (1 - v) ** 1.5
    yc[nose] = -0.15 * radius * u ** 2
    ring = circle(1.0, 12, start_deg=15.0)
    rings = np.stack([np.column_stack([ri * ring[:, 0], yi + aspect * ri * ring[:, 1],
                                       np.full(12, (si - 0.5) * length)])
                      for si, ri, yi in zip(s, r, yc)])
    return loft(rings, end_apex=(0.0, -0.15 * radius, 0.5 * length))


def _landing_gear(points: list[tuple[float, float, float]], ground: float, wheel_r: float) -> list[Part]:
    """Struts from the given attachment points down to wheels resting at ``ground``."""
    parts: list[Part] = []
    for x, y, z in points:
        parts.append(cylinder((x, y, z), (x, ground + wheel_r, z), 0.08 * wheel_r + 0.002, sections=6))
        parts.append(disc((x, ground + wheel_r, z), wheel_r, 0.8 * wheel_r, axis="x", sections=10))
    return parts


def _airplane(rng: np.random.Generator, variant: str) -> list[Part]:
    """Airliner, straight-wing propeller plane, delta-wing fighter, business jet with tail engines."""
    parts: list[Part] = []
    L = 1.0
    if variant == "delta":
        rf = _u(rng, 0.035, 0.05)
        parts.append(_fuselage(L, rf, _u(rng, 0.6, 0.72), _u(rng, 1.2, 1.8), 0.05, 0.0, 0.8, aspect=1.0))
        root_c = _u(rng, 0.42, 0.55)
        le_z = _u(rng, 0.05, 0.15)
        span = _u(rng, 0.22, 0.32)
        sweep = _u(rng, 45, 62)
        tip_c = max(0.03, root_c - span * np.tan(np.radians(sweep)) - _u(rng, -0.05, 0.05))
        parts += _both(_wing((0.0, -0.3 * rf, le_z), root_c, tip_c, span, sweep, _u(rng, -4, 0), 0.05))
        fin_z = -0.5 * L + _u(rng, 0.18, 0.24)
        fin_c, fin_h = _u(rng, 0.14, 0.2), _u(rng, 0.12, 0.18)
        if _chance(rng, 0.5):
            parts.append(_wing((0.0, 0.8 * rf, fin_z), fin_c, fin_c * 0.35, fin_h, _u(rng, 40, 55), 0, 0.06,
                               True))
        else:
            parts += _both(_wing((1.6 * rf, 0.6 * rf, fin_z), fin_c, fin_c * 0.4, fin_h * 0.85,
                                 _u(rng, 40, 55), 0,
                                 0.06, True, cant=_u(rng, 10, 25)))
        if _chance(rng, 0.5):  # tail planes
            parts += _both(_wing((0.0, 0.0, -0.5 * L + 0.14), 0.12, 0.04, _u(rng, 0.1, 0.15), 45, -3, 0.05))
        if _chance(rng, 0.3):  # canards
            parts += _both(_wing((0.0, 0.3 * rf, le_z + 0.12), 0.08, 0.02, 0.08, 50, 5, 0.05))
        parts.append(ellipsoid((0, 0.9 * rf, 0.25), (0.7 * rf, 0.8 * rf, 0.1), rows=5, sections=10))
        parts += _both(box((0.6 * rf, 1.4 * rf, 0.25), (1.1 * rf, -0.2 * rf, 0.05)))  # intakes
        parts.append(cylinder((0, 0, -0.5 * L + 0.02), (0, 0, -0.5 * L - 0.04), 0.8 * rf, 0.7 * rf,
                              sections=12))
        gear_ground = -rf - 0.08
    else:
        if variant == "straight":  # short, stubby fuselage with a long tapering tail cone
            rf = _u(rng, 0.055, 0.075)
            tail_end = _u(rng, 0.45, 0.55)
            parts.append(_fuselage(L, rf, _u(rng, 0.8, 0.88), _u(rng, 1.5, 2.2), tail_end, _u(rng, 0.2, 0.5),
                                   _u(rng, 0.1, 0.18)))
        else:
            rf = _u(rng, 0.045, 0.065)
            tail_end = _u(rng, 0.28, 0.36)
            parts.append(_fuselage(L, rf, _u(rng, 0.86, 0.92), _u(rng, 2.0, 3.0), tail_end, _u(rng, 0.5, 0.8),
                                   _u(rng, 0.12, 0.25)))
        if variant == "straight":
            high = _chance(rng, 0.6)
            wy = 0.85 * rf if high else -0.6 * rf
            root_c = _u(rng, 0.12, 0.17)
            span = _u(rng, 0.55, 0.7)
            wz = _u(rng, 0.12, 0.2)
            parts += _both(_wing((0.0, wy, wz), root_c, root_c * _u(rng, 0.6, 1.0), span, _u(rng, 0, 4),
                                 _u(rng, 0, 3) if high else _u(rng, 3, 7), 0.14))
            if high and _chance(rng, 0.6):  # wing struts
                parts += _both(cylinder((0.8 * rf, -0.6 * rf, wz - 0.05), (0.3 * span, wy, wz - 0.05), 0.004,
                                        sections=6))
            if _chance(rng, 0.5):  # single nose propeller
                parts += _propeller((0.0, -0.15 * rf, 0.5 * L + 0.01), _u(rng, 0.09, 0.13),
                                    int(rng.integers(2, 4)), _u(rng, 0, 180))
            else:  # twin engines on the wings
                xe = _u(rng, 0.18, 0.3)
                pod = _nacelle((xe, wy - 0.2 * rf, wz + 0.08), root_c + 0.1, 0.035)
                parts += _both(pod)
                for q in _propeller((xe, wy - 0.2 * rf, wz + 0.09), _u(rng, 0.08, 0.12), 3, _u(rng, 0, 180)):
                    parts += _both(q)
            gear_ground = -rf - _u(rng, 0.04, 0.08)
            if _chance(rng, 0.7):
                parts += _landing_gear([(0.0, -rf, 0.38)], gear_ground, 0.022)
                for q in _landing_gear([(0.12, wy if not high else -rf, wz - 0.1)], gear_ground, 0.026):
                    parts += _both(q)
            tail_c, tail_s = _u(rng, 0.09, 0.13), _u(rng, 0.14, 0.2)
            stab_y, fin_y = 0.5 * rf, 0.6 * rf
        else:
            swept = _u(rng, 24, 36)
            root_c = _u(rng, 0.18, 0.24)
            span = _u(rng, 0.4, 0.55) if variant == "airliner" else _u(rng, 0.32, 0.42)
            wy, wz = -0.55 * rf, _u(rng, 0.02, 0.1)
            parts += _both(_wing((0.0, wy, wz), root_c, root_c * _u(rng, 0.2, 0.35), span, swept,
                                 _u(rng, 3, 7), 0.11))
            if _chance(rng, 0.6):  # winglets
                tip_z = wz - span * np.tan(np.radians(swept))
                tip_y = wy + span * np.tan(np.radians(5))
                parts += _both(_wing((span - 0.005, tip_y, tip_z), 0.05, 0.02, _u(rng, 0.03, 0.06), 40, 0,
                                     0.08, True,
                                     cant=10))
            if variant == "airliner":
                n_eng = 1 if _chance(rng, 0.7) else 2
                er, el = _u(rng, 0.03, 0.045), _u(rng, 0.12, 0.17)
                for frac in ((0.35,) if n_eng == 1 else (0.28, 0.58)):
                    xe = frac * span
                    le = wz - xe * np.tan(np.radians(swept))
                    ye = wy + xe * np.tan(np.radians(5)) - er - 0.012
                    parts += _both(_nacelle((xe, ye, le + 0.6 * el), el * (0.8 if n_eng == 2 else 1.0), er))
                    parts += _both(box((0.008, 0.03, el * 0.7), (xe, ye + er * 0.9, le + 0.15 * el)))
            else:  # engines on the rear fuselage
                er, el = _u(rng, 0.025, 0.035), _u(rng, 0.11, 0.15)
                ez = -0.5 * L + tail_end + _u(rng, 0.0, 0.06)
                parts += _both(_nacelle((rf + er + 0.012, 0.35 * rf, ez), el, er))
                parts += _both(box((0.03, 0.008, el * 0.5), (rf + 0.008, 0.3 * rf, ez - el * 0.5)))
            gear_ground = -rf - _u(rng, 0.05, 0.09)
            if _chance(rng, 0.35):
                parts += _landing_gear([(0.0, -rf, 0.36)], gear_ground, 0.018)
                for q in _landing_gear([(0.12, wy, wz - root_c * 0.6)], gear_ground, 0.024):
                    parts += _both(q)
            tail_c, tail_s = _u(rng, 0.12, 0.17), _u(rng, 0.14, 0.2)
            stab_y, fin_y = 0.55 * rf, 0.6 * rf
        # conventional or T tail
        fin_h = _u(rng, 0.13, 0.2)
        fin_sweep = _u(rng, 30, 48) if variant != "straight" else _u(rng, 15, 35)
        fin_c = _u(rng, 0.14, 0.2)
        fin_root = np.array([0.0, fin_y, -0.5 * L + fin_c + 0.01])
        parts.append(_wing(fin_root, fin_c, fin_c * _u(rng, 0.35, 0.6), fin_h, fin_sweep, 0, 0.1, True))
        t_tail = variant == "tail_engine" or (variant == "straight" and _chance(rng, 0.2))
        if t_tail:
            stab_root = fin_root + np.array([0.0, fin_h * 0.97,
                                             -fin_h * np.tan(np.radians(fin_sweep)) + 0.01])
            tail_c = fin_c * 0.55
        else:
            stab_root = np.array([0.0, stab_y, -0.5 * L + tail_c + 0.015])
        parts += _both(_wing(stab_root, tail_c, tail_c * 0.5, tail_s, fin_sweep * 0.8, _u(rng, 0, 6), 0.09))
    return parts


# ----------------------------------------------------------------------------------------------
# display
# ----------------------------------------------------------------------------------------------

def _screen_panel(w: float, h: float, depth: float, bezel: float, center: Sequence[float],
                  rng: np.random.Generator, tilt: float = 0.0) -> list[Part]:
    """Flat panel (bezel frame box + inset screen + rear bulge) facing +z, centred at ``center``."""
    c = np.asarray(center, dtype=np.float64)
    rot = rot_x(-tilt)
    panel = rounded_box((w, h, depth), min(0.004, depth / 3), corner=_u(rng, 0.002, 0.012))
    parts = [transform(panel, rot, c)]
    chin = bezel * _u(rng, 1.0, 3.0) if _chance(rng, 0.4) else 0.0   # thicker bottom bezel
    parts.append(transform(box((w - 2 * bezel, h - 2 * bezel - chin, 0.004), (0, chin / 2, depth / 2 + 0.001)),
                           rot, c))
    if _chance(rng, 0.7):
        bulge = rounded_box((w * _u(rng, 0.4, 0.8), h * _u(rng, 0.4, 0.7), depth * _u(rng, 0.8, 2.0)), 0.01,
                            (0, -0.05 * h, -depth / 2))
        parts.append(transform(bulge, rot, c))
    return parts


def _display(rng: np.random.Generator, variant: str) -> list[Part]:
    """Monitor on a stand, monitor on a desk arm, wide TV, CRT monitor; screen faces +z."""
    parts: list[Part] = []
    if variant == "crt":
        w = _u(rng, 0.36, 0.48)
        h = w * _u(rng, 0.78, 0.85)
        depth = w * _u(rng, 0.85, 1.1)
        base_h = _u(rng, 0.02, 0.08)
        y0 = base_h + h / 2 + 0.01
        front_d = _u(rng, 0.05, 0.1)
        parts.append(rounded_box((w, h, front_d), 0.01, (0, y0, -front_d / 2), corner=0.02))
        parts.append(rounded_box((w * 0.8, h * 0.78, 0.01), 0.004, (0, y0 + 0.01 * h, 0.002), corner=0.03))
        shrink = _u(rng, 0.45, 0.65)
        rings = []
        for f, sc in ((0.0, 0.97), (0.25, 0.95), (1.0, shrink)):
            rect = rounded_rect(w * sc, h * sc, 0.03, 2)
            rings.append(np.column_stack([rect[:, 0], rect[:, 1] + y0 - (1 - sc) * 0.15 * h,
                                          np.full(len(rect), -front_d - f * (depth - front_d))]))
        parts.append(loft(np.stack(rings)))
        if base_h > 0.03:
            parts.append(lathe([(0.0, 0.0), (w * 0.32, 0.0), (w * 0.3, 0.015), (w * 0.15, base_h + 0.01),
                                (0.0, base_h + 0.01)], sections=16, center=(0, 0, -depth * 0.4)))
        else:
            parts.append(box((w * 0.6, base_h + 0.005, depth * 0.6),
                             (0, (base_h + 0.005) / 2, -depth * 0.45)))
        return parts
    if variant == "tv":
        w = _u(rng, 0.9, 1.6)
        h = w * 9 / 16 + _u(rng, 0.0, 0.04)
        depth = _u(rng, 0.02, 0.06)
        stand = _pick(rng, ("feet", "pedestal", "none"))
        lift = _u(rng, 0.05, 0.12) if stand != "none" else 0.0
        y0 = lift + h / 2
        parts += _screen_panel(w, h, depth, _u(rng, 0.006, 0.02), (0, y0, 0), rng)
        if stand == "feet":
            xf = w / 2 - _u(rng, 0.06, 0.25)
            fd = _u(rng, 0.18, 0.3)
            for sx in (1.0, -1.0):
                parts.append(tube([(sx * xf, lift + 0.03, 0.0), (sx * (xf + 0.03), 0.0, fd / 2)], 0.012,
                                  sections=6))
                parts.append(tube([(sx * xf, lift + 0.03, 0.0), (sx * (xf + 0.03), 0.0, -fd / 2)], 0.012,
                                  sections=6))
        elif stand == "pedestal":
            parts.append(box((0.08, lift + 0.05, 0.03), (0, (lift + 0.05) / 2, -depth / 2 - 0.01)))
            parts.append(rounded_box((_u(rng, 0.3, 0.5), 0.02, _u(rng, 0.18, 0.26)), 0.006, (0, 0.01, -0.02),
                                     corner=0.03))
        else:  # wall bracket on the back
            parts.append(box((0.3, 0.25, 0.03), (0, y0, -depth / 2 - 0.035)))
        return parts
    # computer monitor
    w = _u(rng, 0.45, 0.75)
    aspect = _pick(rng, (9 / 16, 10 / 16, 9 / 21 * 1.1))
    h = w * aspect
    depth = _u(rng, 0.015, 0.04)
    tilt = _u(rng, 0.0, 10.0)
    if variant == "monitor":
        lift = _u(rng, 0.06, 0.16)
        y0 = lift + h / 2
        parts += _screen_panel(w, h, depth, _u(rng, 0.005, 0.02), (0, y0, 0), rng, tilt)
        neck_z = -depth / 2 - _u(rng, 0.02, 0.06)
        base = _pick(rng, ("plate", "disc", "v"))
        base_d = _u(rng, 0.16, 0.24)
        foot_z = neck_z - _u(rng, 0.0, 0.05)
        parts.append(tube([(0, y0 - 0.03, neck_z + 0.01), (0, 0.015, foot_z)], 0.03, sections=4, aspect=0.4))
        if base == "plate":
            parts.append(rounded_box((_u(rng, 0.2, 0.3), 0.015, base_d), 0.005, (0, 0.0075, foot_z + 0.03),
                                     corner=0.02))
        elif base == "disc":
            parts.append(transform(lathe([(1.0, 0.0), (0.95, 0.015)], sections=20), None,
                                   (0, 0, foot_z + 0.02),
                                   (0.11, 1.0, base_d / 2)))
        else:
            for sx in (1.0, -1.0):
                parts.append(tube([(0, 0.012, foot_z), (sx * 0.12, 0.008, foot_z + base_d * 0.7)], 0.012,
                                  sections=4, aspect=0.5))
        return parts
    # monitor on an articulated desk arm, clamped behind it
    lift = _u(rng, 0.15, 0.3)
    y0 = lift + h / 2
    parts += _screen_panel(w, h, depth, _u(rng, 0.005, 0.02), (0, y0, 0), rng, tilt)
    mount_z = -depth / 2 - 0.02
    pole_z = mount_z - _u(rng, 0.2, 0.35)
    pole_h = y0 + _u(rng, -0.1, 0.15)
    parts.append(box((0.1, 0.1, 0.012), (0, y0, mount_z + 0.006)))
    parts.append(cylinder((0, 0.0, pole_z), (0, pole_h, pole_z), 0.018, sections=10))
    parts.append(box((0.1, 0.04, 0.14), (0, 0.02, pole_z + 0.02)))
    elbow = np.array([0.0, pole_h - _u(rng, 0.0, 0.1), (pole_z + mount_z) / 2 - 0.03])
    parts.append(tube([(0, pole_h - 0.03, pole_z), elbow], 0.02, sections=6, aspect=0.6))
    parts.append(tube([elbow, (0, y0, mount_z - 0.03)], 0.018, sections=6, aspect=0.6))
    parts.append(cylinder(elbow - np.array([0, 0.025, 0]), elbow + np.array([0, 0.025, 0]), 0.025,
                          sections=10))
    return parts


# ----------------------------------------------------------------------------------------------
# lamp
# ----------------------------------------------------------------------------------------------

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


def _lamp(rng: np.random.Generator, variant: str) -> list[Part]:
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


# ----------------------------------------------------------------------------------------------
# speaker
# ----------------------------------------------------------------------------------------------

def _driver(center: Sequence[float], radius: float, rotation: np.ndarray | None = None) -> Part:
    """Loudspeaker driver facing +z (frame rim, concave cone, dust cap) whose back sits at ``center``."""
    r = radius
    prof = [(0.0, 0.0), (r, 0.0), (r, 0.06 * r + 0.002), (0.88 * r, 0.1 * r + 0.002),
            (0.76 * r, 0.06 * r + 0.002),
            (0.3 * r, 0.002), (0.27 * r, 0.05 * r + 0.002), (0.0, 0.08 * r + 0.002)]
    rot = rot_x(90) if rotation is None else rotation @ rot_x(90)
    return lathe(prof, sections=16, center=center, rotation=rot)


def _speaker(rng: np.random.Generator, variant: str) -> list[Part]:
    """Bookshelf speaker, floor-standing tower, cylindrical (smart / portable) speaker, subwoofer."""
    parts: list[Part] = []
    if variant == "cylindrical":
        r = _u(rng, 0.05, 0.1)
        h = r * _u(rng, 1.6, 3.2)
        if _chance(rng, 0.3):  # lying portable speaker: axis along x, drivers on the front
            length = r * _u(rng, 2.5, 4.0)
            parts.append(lathe([(0.0, -length / 2), (r * 0.95, -length / 2), (r, -length / 2 + 0.01),
                                (r, length / 2 - 0.01), (r * 0.95, length / 2), (0.0, length / 2)],
                               sections=18, center=(0, r, 0), rotation=rot_z(90)))
            rd = r * 0.5
            for sx in (-1.0, 1.0):
                parts.append(_driver((sx * length * 0.22, r, np.sqrt(r ** 2 - rd ** 2) - 0.003), rd))
                parts.append(disc((sx * (length / 2 + 0.004), r, 0), r * 0.7, 0.01, axis="x", sections=14))
            return parts
        foot = _u(rng, 0.005, 0.015)
        parts.append(disc((0, foot / 2, 0), r * _u(rng, 0.75, 0.92), foot, sections=20))
        parts.append(lathe([(0.0, foot), (r * 0.9, foot), (r, foot + 0.02), (r, h - 0.015), (r * 0.92, h),
                            (0.0, h)], sections=20))
        n = int(rng.integers(1, 3))
        rd = r * _u(rng, 0.35, 0.5)
        for k in range(n):
            y = h * (0.3 + 0.4 * k) if n == 2 else h * 0.5
            parts.append(_driver((0, y, np.sqrt(r ** 2 - rd ** 2) - 0.003), rd))
        if _chance(rng, 0.5):
            parts.append(disc((0, h + 0.003, 0), r * 0.8, 0.006, axis="y", sections=18))
        return parts
    if variant == "tower":
        w, h, d = _u(rng, 0.17, 0.28), _u(rng, 0.8, 1.15), _u(rng, 0.22, 0.36)
    elif variant == "subwoofer":
        w = _u(rng, 0.3, 0.5)
        h, d = w * _u(rng, 0.95, 1.15), w * _u(rng, 0.9, 1.15)
    else:
        w, h, d = _u(rng, 0.14, 0.26), _u(rng, 0.22, 0.4), _u(rng, 0.18, 0.3)
    feet = 0.0
    if variant == "tower":
        feet = _u(rng, 0.02, 0.05)
        parts.append(box((w + 0.06, 0.02, d + 0.05), (0, feet - 0.01, 0)))
        for sz in (1, -1):
            parts += _both(cylinder((w / 2 + 0.01, 0.0, sz * d / 2), (w / 2 + 0.01, feet - 0.02, sz * d / 2),
                                    0.008, 0.001, sections=6))  # spikes
    elif variant == "subwoofer":
        feet = 0.02
        for sz in (1, -1):
            parts += _both(disc((w / 2 - 0.05, feet / 2, sz * (d / 2 - 0.05)), 0.03, feet, sections=10))
    edge = _u(rng, 0.002, 0.03)
    parts.append(rounded_box((w, h, d), edge, (0, feet + h / 2, 0), corner=edge))
    zf = d / 2 - 0.002
    if variant == "subwoofer":
        parts.append(_driver((0, feet + h / 2, zf), 0.42 * min(w, h)))
        if _chance(rng, 0.5):
            parts.append(disc((0, feet + 0.08, zf), 0.03, 0.01, axis="z", sections=12))
        return parts
    tweeter_r = _u(rng, 0.012, 0.022)
    n = 1 if variant == "bookshelf" else int(rng.integers(2, 5))
    y = feet + h - max(0.04, tweeter_r + 0.025)
    parts.append(_driver((0, y, zf), tweeter_r))
    y -= tweeter_r + 0.01
    room = (y - feet - (0.06 if variant == "tower" else 0.02)) / n     # height available per woofer
    woofer_r = min(w * _u(rng, 0.32, 0.42), 0.1, 0.5 * room - 0.005)
    for _ in range(n):
        parts.append(_driver((0, y - room / 2 if n == 1 else y - woofer_r - 0.008, zf), woofer_r))
        y -= room if n == 1 else 2 * woofer_r + 0.016
    if _chance(rng, 0.5):  # bass port
        py = feet + min(0.06, y - feet - 0.02) if y - feet > 0.05 else feet + h * 0.1
        parts.append(lathe([(0.02, 0.0), (0.02, 0.006)], sections=12, caps=False, center=(0, py, zf),
                           rotation=rot_x(90)))
    return parts


# ----------------------------------------------------------------------------------------------
# rifle
# ----------------------------------------------------------------------------------------------

RIFLE_MIN_ASPECT = 3.4   # length / height: the barrel is lengthened until a rifle is at least this slender


def _magazine(z_front: float, z_back: float, y_top: float, depth: float, curve: float, width: float) -> Part:
    """Box magazine below a receiver (top edge ``z_back..z_front`` at ``y_top``), ``depth`` long, bent
    forward by ``curve`` (m of forward offset at the bottom)."""
    n = 5
    v = np.linspace(0.0, 1.0, n)
    dz = curve * v ** 2
    front = np.stack([z_front + dz + 0.1 * curve * v, y_top - depth * v], -1)
    back = np.stack([z_back + dz, y_top - depth * v * 0.98], -1)
    return profile_zy(np.concatenate([front, back[::-1]]), width)


def _scope(z0: float, z1: float, y: float, rng: np.random.Generator) -> list[Part]:
    """Telescopic sight along z from ``z0`` (eyepiece) to ``z1`` (objective) with its axis at height ``y``."""
    length = z1 - z0
    r = _u(rng, 0.012, 0.016)
    ro = r * _u(rng, 1.4, 2.0)
    prof = [(0.0, 0.0), (r * 1.4, 0.0), (r * 1.3, 0.18 * length), (r, 0.25 * length), (r, 0.65 * length),
            (ro, 0.85 * length), (ro, length), (0.0, length)]
    parts = [lathe(prof, sections=12, center=(0, y, z0), rotation=rot_x(90))]
    parts.append(cylinder((0, y, z0 + 0.45 * length), (0, y + 1.9 * r, z0 + 0.45 * length), 0.7 * r,
                          sections=8))
    for f in (0.3, 0.6):
        parts.append(box((0.02, y - 0.015, 0.015), (0, (y + 0.015) / 2 + 0.0, z0 + f * length)))
    return parts


def _trigger_guard(y: float, z0: float, z1: float) -> Part:
    """U-shaped trigger guard hanging below ``y`` from ``z0`` to ``z1``."""
    depth = 0.032
    return tube(_fillet([(0, y + 0.003, z1), (0, y - depth, z1 - 0.01), (0, y - depth, z0),
                         (0, y + 0.003, z0 - 0.01)],
                        0.012), 0.0035, sections=6)


def _rifle(rng: np.random.Generator, variant: str) -> list[Part]:
    """Assault rifle, bolt-action sniper rifle, shotgun, bullpup; muzzle towards +z."""
    parts: list[Part] = []
    barrel_r = _u(rng, 0.007, 0.011)
    if variant == "assault":
        zr0, zr1 = -_u(rng, 0.1, 0.15), _u(rng, 0.12, 0.18)
        parts.append(profile_zy([(zr0, -0.03), (zr1, -0.02), (zr1, 0.03), (zr0, 0.035)], 0.03))
        if _chance(rng, 0.5):  # carry handle
            parts.append(profile_zy([(zr0 + 0.02, 0.035), (zr0 + 0.2, 0.035), (zr0 + 0.2, 0.075),
                                     (zr0 + 0.03, 0.075)],
                                    0.016))
        else:
            parts.append(box((0.022, 0.012, zr1 - zr0), (0, 0.041, (zr0 + zr1) / 2)))
        zh = zr1 + _u(rng, 0.18, 0.3)
        if _chance(rng, 0.5):
            parts.append(lathe([(0.0, 0.0), (0.026, 0.0), (0.028, 0.03), (0.026, zh - zr1), (0.0, zh - zr1)],
                               sections=10, center=(0, 0.005, zr1), rotation=rot_x(90)))
        else:
            parts.append(rounded_box((0.045, 0.05, zh - zr1), 0.008, (0, 0.006, (zr1 + zh) / 2)))
        parts.append(profile_zy([(zh - 0.02, 0.02), (zh + 0.01, 0.02), (zh + 0.005, 0.07), (zh - 0.01, 0.07)],
                                0.008))
        parts.append(profile_zy([(-0.08, -0.03), (-0.02, -0.03), (-0.06, -0.13), (-0.1, -0.125)],
                                0.028))  # grip
        parts.append(_trigger_guard(-0.027, -0.04, 0.04))
        parts.append(_magazine(zr0 + 0.2 if zr0 + 0.2 < zr1 - 0.02 else zr1 - 0.02, zr0 + 0.15, -0.025,
                               _u(rng, 0.12, 0.2), _u(rng, 0.0, 0.06), 0.024))
        zb = zr0 - _u(rng, 0.22, 0.3)
        if _chance(rng, 0.5):  # fixed stock
            parts.append(profile_zy([(zr0 + 0.01, 0.03), (zb, 0.02), (zb, -0.1), (zb + 0.04, -0.1),
                                     (zr0 + 0.01, -0.02)],
                                    0.036))
        else:  # collapsible: buffer tube + slim stock
            parts.append(cylinder((0, 0.01, zr0 + 0.01), (0, 0.01, zb + 0.04), 0.015, sections=10))
            parts.append(profile_zy([(zb + 0.12, 0.03), (zb, 0.03), (zb, -0.09), (zb + 0.03, -0.09),
                                     (zb + 0.1, -0.005)],
                                    0.032))
        if _chance(rng, 0.3):
            parts += _scope(zr0 + 0.02, zr1 - 0.01, 0.085, rng)
        z_barrel, y_barrel = zh, 0.005
    elif variant == "sniper":
        zb = -_u(rng, 0.42, 0.5)
        zf = _u(rng, 0.18, 0.28)
        comb = _u(rng, 0.02, 0.04)
        grip_drop = _u(rng, -0.09, -0.05)
        stock = [(zb, comb), (zb + 0.2, comb + 0.005), (-0.12, 0.0), (-0.08, -0.015), (zf, -0.01),
                 (zf, -0.045),
                 (0.02, -0.05), (-0.06, -0.045), (-0.1, grip_drop), (-0.14, grip_drop), (-0.16, -0.04),
                 (zb + 0.05, -0.09), (zb, -0.11)]
        parts.append(cylinder((0, 0.01, -0.1), (0, 0.01, 0.12), 0.019, sections=10))
        stock_w = _u(rng, 0.04, 0.05)
        parts.append(profile_zy(stock, stock_w))
        # bolt handle on the right, bent down along the stock (kept within the stock's width so the
        # bounding box stays centred on the symmetry plane)
        knob_x = stock_w / 2 - 0.006
        parts.append(tube([(0.0, 0.015, -0.06), (knob_x - 0.004, 0.008, -0.062),
                           (knob_x - 0.002, -0.006, -0.066)],
                          0.004, sections=6))
        parts.append(ellipsoid((knob_x, -0.01, -0.066), (0.006, 0.008, 0.008), rows=4, sections=8))
        parts.append(_trigger_guard(-0.045, -0.075, -0.005))
        parts.append(box((0.03, 0.045, 0.07), (0, -0.06, 0.0)))
        parts += _scope(-0.14, _u(rng, 0.12, 0.2), _u(rng, 0.06, 0.075), rng)
        if _chance(rng, 0.5):  # bipod, deployed
            foot_z = zf + _u(rng, 0.0, 0.08)
            leg = cylinder((0.012, -0.04, zf - 0.03), (_u(rng, 0.03, 0.08), -_u(rng, 0.17, 0.24), foot_z),
                           0.005, sections=6)
            parts += _both(leg)
        z_barrel, y_barrel = 0.12, 0.01
        barrel_r *= 1.2
    elif variant == "shotgun":
        zb = -_u(rng, 0.38, 0.45)
        drop = _u(rng, 0.03, 0.06)
        stock = [(zb, 0.0 - drop * 0.3), (zb + 0.1, 0.0), (-0.08, 0.02), (-0.06, -0.02), (-0.13, -0.045),
                 (zb + 0.06, -0.1 - drop), (zb, -0.12 - drop)]
        parts.append(profile_zy(stock, _u(rng, 0.035, 0.045)))
        zr1 = _u(rng, 0.1, 0.16)
        parts.append(rounded_box((0.04, 0.06, zr1 + 0.08), 0.008, (0, 0.0, (zr1 - 0.08) / 2)))
        parts.append(_trigger_guard(-0.028, -0.06, 0.01))
        double = _chance(rng, 0.4)
        z_end = zr1 + _u(rng, 0.55, 0.7)
        if double:
            for sx in (1.0, -1.0):
                parts.append(cylinder((sx * 0.011, 0.012, zr1), (sx * 0.011, 0.012, z_end), 0.011,
                                      sections=10))
            parts.append(rounded_box((0.035, 0.03, 0.22), 0.006, (0, -0.01, zr1 + 0.14)))
        else:
            parts.append(cylinder((0, -0.012, zr1), (0, -0.012, z_end - _u(rng, 0.0, 0.08)), 0.01,
                                  sections=10))
            pump_z = zr1 + _u(rng, 0.05, 0.15)
            parts.append(lathe([(0.0, 0.0), (0.018, 0.0), (0.02, 0.01), (0.02, 0.17), (0.018, 0.18),
                                (0.0, 0.18)],
                               sections=10, center=(0, -0.012, pump_z), rotation=rot_x(90)))
        z_barrel, y_barrel = (z_end, 0.012) if double else (zr1, 0.015)
        if double:
            barrel_r = 0.0
    else:  # bullpup
        zb, zf = -_u(rng, 0.33, 0.4), _u(rng, 0.12, 0.2)
        body = [(zb, -0.085), (zb, 0.035), (zb + 0.12, 0.05), (zf, 0.04), (zf, -0.02), (0.02, -0.03),
                (-0.12, -0.035),
                (-0.17, -0.07), (zb + 0.06, -0.08)]
        parts.append(profile_zy(body, _u(rng, 0.045, 0.055)))
        parts.append(profile_zy([(0.02, -0.02), (0.06, -0.02), (0.03, -0.11), (-0.005, -0.105)], 0.028))
        parts.append(profile_zy([(-0.01, -0.03), (0.09, -0.02), (0.1, -0.05), (0.08, -0.1), (0.06, -0.1),
                                 (0.075, -0.05), (-0.005, -0.06)], 0.012))  # large trigger guard
        parts.append(_magazine(-0.09, -0.13, -0.03, _u(rng, 0.08, 0.12), _u(rng, 0.0, 0.03), 0.024))
        if _chance(rng, 0.6):
            parts.append(profile_zy([(zb + 0.12, 0.05), (zf - 0.05, 0.045), (zf - 0.08, 0.08),
                                     (zb + 0.15, 0.085)],
                                    0.02))
        z_barrel, y_barrel = zf, 0.01
    # barrel, lengthened until the rifle is long and thin
    if barrel_r > 0:
        verts = np.concatenate([v for v, _ in parts])
        y_ext = verts[:, 1].max() - verts[:, 1].min()
        z_min = verts[:, 2].min()
        planned = z_barrel + (_u(rng, 0.35, 0.6) if variant == "sniper" else _u(rng, 0.12, 0.3))
        muzzle = max(planned, z_min + RIFLE_MIN_ASPECT * y_ext + 0.01)
        parts.append(cylinder((0, y_barrel, z_barrel - 0.02), (0, y_barrel, muzzle - 0.05), barrel_r * 1.15,
                              barrel_r, sections=10))
        brake_r = barrel_r * _u(rng, 1.2, 1.6)
        parts.append(cylinder((0, y_barrel, muzzle - 0.05), (0, y_barrel, muzzle), brake_r, sections=10))
    else:
        verts = np.concatenate([v for v, _ in parts])
        y_ext = verts[:, 1].max() - verts[:, 1].min()
        z_ext = verts[:, 2].max() - verts[:, 2].min()
        if z_ext < RIFLE_MIN_ASPECT * y_ext:  # double barrel: extend both barrels
            extra = RIFLE_MIN_ASPECT * y_ext - z_ext + 0.01
            for sx in (1.0, -1.0):
                parts.append(cylinder((sx * 0.011, 0.012, z_barrel - 0.01),
                                      (sx * 0.011, 0.012, z_barrel + extra), 0.011,
                                      sections=10))
    return parts


# ----------------------------------------------------------------------------------------------
# phone
# ----------------------------------------------------------------------------------------------

def _keypad(center: Sequence[float], width: float, height: float, rows: int, cols: int,
            rotation: np.ndarray | None = None) -> list[Part]:
    """Grid of small keys on a surface facing +z (then rotated by ``rotation`` about ``center``)."""
    c = np.asarray(center, dtype=np.float64)
    kw, kh = width / cols * 0.75, height / rows * 0.7
    parts = []
    for i in range(rows):
        for j in range(cols):
            x = (j + 0.5) / cols * width - width / 2
            y = height / 2 - (i + 0.5) / rows * height
            parts.append(transform(box((kw, kh, 0.003), (x, y, 0.001)), rotation, c))
    return parts


def _phone(rng: np.random.Generator, variant: str) -> list[Part]:
    """Smartphone, open flip phone, desk telephone with handset, candy-bar phone; screen/keys face +z."""
    parts: list[Part] = []
    if variant == "smartphone":
        w, h, d = _u(rng, 0.064, 0.082), _u(rng, 0.13, 0.168), _u(rng, 0.007, 0.011)
        corner = _u(rng, 0.004, 0.012)
        parts.append(rounded_box((w, h, d), d * _u(rng, 0.2, 0.48), (0, 0, 0), corner=corner))
        bezel = _u(rng, 0.002, 0.005)
        chin = _u(rng, 0.0, 0.012)
        parts.append(rounded_box((w - 2 * bezel, h - 2 * bezel - chin, 0.0012), 0.0005,
                                 (0, chin / 2, d / 2 + 0.0002),
                                 corner=max(corner - bezel, 0.001)))
        parts.append(box((0.012, 0.0015, 0.001), (0, h / 2 - bezel / 2 - 0.0005, d / 2 + 0.0003)))
        if _chance(rng, 0.6):  # camera bump on the back
            cw = _u(rng, 0.015, 0.03)
            parts.append(rounded_box((cw, cw * _u(rng, 1.0, 1.8), 0.0015), 0.0006,
                                     (0, h / 2 - 0.02, -d / 2 - 0.0006),
                                     corner=0.004))
        else:
            parts.append(disc((0, h / 2 - 0.015, -d / 2 - 0.0005), 0.006, 0.0015, axis="z", sections=12))
        parts += _both(box((0.0012, 0.015, d * 0.4), (w / 2 + 0.0004, h * 0.15, 0)))
        return parts
    if variant == "candybar":
        w, h, d = _u(rng, 0.044, 0.052), _u(rng, 0.1, 0.125), _u(rng, 0.013, 0.02)
        parts.append(rounded_box((w, h, d), d * 0.4, (0, 0, 0), corner=_u(rng, 0.005, 0.012)))
        sh = h * _u(rng, 0.28, 0.36)
        parts.append(box((w * 0.78, sh, 0.0012), (0, h / 2 - 0.012 - sh / 2, d / 2 + 0.0003)))
        parts.append(disc((0, h / 2 - 0.016 - sh - 0.008, d / 2 + 0.0008), 0.007, 0.0025, axis="z",
                          sections=12))
        parts += _keypad((0, -h / 2 + 0.008 + 0.5 * (h * 0.36), d / 2), w * 0.8, h * 0.36, 4, 3)
        if _chance(rng, 0.3):
            parts.append(cylinder((0, h / 2 - 0.004, -d * 0.2), (0, h / 2 + 0.012, -d * 0.2), 0.003,
                                  sections=8))
        return parts
    if variant == "flip":
        w = _u(rng, 0.044, 0.052)
        h1, h2 = _u(rng, 0.08, 0.1), _u(rng, 0.08, 0.1)
        d1, d2 = _u(rng, 0.011, 0.016), _u(rng, 0.007, 0.011)
        tilt = _u(rng, 8, 30)
        parts.append(rounded_box((w, h1, d1), d1 * 0.35, (0, h1 / 2, 0), corner=0.006))
        parts += _keypad((0, h1 * 0.38, d1 / 2), w * 0.78, h1 * 0.52, 4, 3)
        parts.append(disc((0, h1 * 0.78, d1 / 2 + 0.0008), 0.0065, 0.002, axis="z", sections=12))
        pivot = np.array([0.0, h1, -d1 / 2 + d2 / 2])
        rot = rot_x(-tilt)
        parts.append(transform(rounded_box((w, h2, d2), d2 * 0.35, (0, h2 / 2 + 0.004, 0), corner=0.006), rot,
                               pivot))
        parts.append(transform(box((w * 0.8, h2 * 0.55, 0.0012), (0, h2 * 0.55, d2 / 2 + 0.0003)), rot,
                               pivot))
        parts.append(cylinder((-w / 2 + 0.003, h1, -d1 / 2 + d2 / 2), (w / 2 - 0.003, h1, -d1 / 2 + d2 / 2),
                              0.0055, sections=10))
        return parts
    # desk phone: wedge base with keypad and display, handset across the top
    w, depth = _u(rng, 0.17, 0.24), _u(rng, 0.17, 0.23)
    hb, hf = _u(rng, 0.06, 0.09), _u(rng, 0.025, 0.04)
    zf, zb = depth / 2, -depth / 2
    parts.append(profile_zy([(zf, 0.0), (zf, hf), (zb + 0.06, hb), (zb, hb), (zb, 0.0)], w))
    slope = np.degrees(np.arctan2(hb - hf, zf - zb - 0.06))
    rot = rot_x(-(90 - slope))
    mid = np.array([0.0, (hf + hb) / 2, (zf + zb + 0.06) / 2])   # centre of the sloped top
    pad_c = mid + rot @ np.array([0.0, -0.015, 0.0])
    parts += _keypad(pad_c, w * 0.4, 0.07, 4, 3, rot)
    parts.append(transform(box((w * 0.35, 0.022, 0.004), (0, 0.04, 0.0)), rot, mid))
    # handset lying across the back, on a cradle
    hl = _u(rng, 0.19, 0.23)
    hy = hb + 0.018
    hz = zb + 0.03
    parts += _both(box((0.03, 0.015, 0.04), (hl / 2 - 0.025, hb + 0.005, hz)))
    parts.append(tube([(-hl / 2 + 0.02, hy + 0.004, hz), (-hl / 4, hy + 0.012, hz), (hl / 4, hy + 0.012, hz),
                       (hl / 2 - 0.02, hy + 0.004, hz)], 0.011, sections=8, aspect=0.8))
    for sx in (1.0, -1.0):
        parts.append(ellipsoid((sx * (hl / 2 - 0.02), hy, hz), (0.025, 0.015, 0.026), rows=5, sections=10))
    return parts


# ----------------------------------------------------------------------------------------------
# vessel
# ----------------------------------------------------------------------------------------------

def _hull(length: float, beam: float, freeboard: float, draft: float, fullness: float, sheer: float,
          transom: float, bow_flare: float = 0.0) -> tuple[Part, np.ndarray, np.ndarray, np.ndarray]:
    """Lofted hull along z (bow at +z), waterline at y = 0. Returns the part and, per station, z, the
    deck height and the half beam (so superstructures can be placed)."""
    s = np.unique(np.concatenate([np.linspace(0.0, 1.0, 14), [0.93, 0.97, 0.99]]))
    s_max = 0.45
    w = np.where(s > s_max, (1.0 - ((s - s_max) / (1.0 - s_max)) ** 2).clip(0.0, 1.0) ** 0.6,
                 transom + (1.0 - transom) * (1.0 - ((s_max - s) / s_max) ** 2))
    w = np.maximum(w, 0.004) * beam / 2
    deck = freeboard + sheer * s ** 2
    keel = -draft + (draft + 0.5 * freeboard) * np.clip((s - 0.72) / 0.28, 0.0, 1.0) ** 1.6
    keel = np.where(s < 0.05, -draft * (0.6 + 8 * s), keel)
    zs = (s - 0.5) * length
    f = fullness
    half = [(1.0, 1.0), (0.97 + 0.03 * bow_flare, 0.35), (0.9 + 0.08 * f, -0.15 - 0.8 * f),
            (0.45 + 0.45 * f, -0.55 - 0.44 * f), (0.0, -1.0)]
    rings = []
    for wi, di, ki, zi in zip(w, deck, keel, zs):
        pts = []
        for fx, fy in half + [(-a, b) for a, b in half[-2::-1]]:
            y = di * fy if fy > 0 else -ki * fy
            pts.append((-fx * wi, y, zi))
        rings.append(pts)
    rings_arr = np.asarray(rings)[:, ::-1]  # start from the port deck edge
    return loft(rings_arr), zs, deck, w


def _vessel(rng: np.random.Generator, variant: str) -> list[Part]:
    """Sailboat, motorboat, ship (cargo / liner / warship), submarine; bow towards +z."""
    parts: list[Part] = []
    if variant == "submarine":
        L, r = 1.0, _u(rng, 0.045, 0.065)
        s = np.array([0.0, 0.02, 0.06, 0.12, 0.2, 0.3, 0.5, 0.7, 0.85, 0.92, 0.96, 0.985])
        rad = np.interp(s, [0.0, 0.06, 0.3, 0.85, 0.95, 1.0], [0.08, 0.3, 1.0, 1.0, 0.75, 0.0]) * r
        ring = circle(1.0, 12)
        rings = np.stack([np.column_stack([ri * ring[:, 0], ri * ring[:, 1], np.full(12, (si - 0.5) * L)])
                          for si, ri in zip(s, rad)])
        parts.append(loft(rings, end_apex=(0, 0, 0.5 * L)))
        sz0 = _u(rng, 0.55, 0.65) - 0.5
        sl, sh = _u(rng, 0.08, 0.13), _u(rng, 0.06, 0.09)
        parts.append(profile_zy([(sz0, 0.5 * r), (sz0 + sl, 0.5 * r), (sz0 + sl * 0.85, r + sh),
                                 (sz0 + 0.01, r + sh)],
                                _u(rng, 0.018, 0.026)))
        parts += _both(_wing((0.0, r + sh * 0.6, sz0 + sl * 0.7), 0.035, 0.025, _u(rng, 0.03, 0.05), 5, 0,
                             0.1))
        tail = -0.5 * L + 0.06
        parts += _both(_wing((0.0, 0.0, tail), 0.06, 0.035, 0.07, 20, 0, 0.08))
        parts.append(_wing((0.0, 0.0, tail), 0.06, 0.035, 0.07, 20, 0, 0.08, True))
        parts.append(transform(_wing((0.0, 0.0, tail), 0.06, 0.035, 0.07, 20, 0, 0.08, True),
                               scale=(1, -1, 1)))
        for k in range(5):
            rot = rot_z(360.0 * k / 5)
            parts.append(box((0.012, 0.05, 0.004),
                             np.array([0, 0, -0.5 * L - 0.005]) + rot @ np.array([0, 0.025, 0]),
                             rot @ rot_y(25)))
        if _chance(rng, 0.4):
            parts.append(cylinder((0, r + sh, sz0 + 0.03), (0, r + sh + 0.04, sz0 + 0.03), 0.003, sections=6))
        return parts
    if variant == "sailboat":
        L = 1.0
        hull, zs, deck, half_w = _hull(L, _u(rng, 0.26, 0.34), _u(rng, 0.07, 0.1), _u(rng, 0.04, 0.06), 0.2,
                                       _u(rng, 0.01, 0.04), _u(rng, 0.5, 0.75), 0.0)
        parts.append(hull)
        keel_d = _u(rng, 0.12, 0.2)
        kz = _u(rng, -0.05, 0.05)
        parts.append(profile_zy([(kz + 0.12, -0.03), (kz - 0.06, -0.03), (kz - 0.08, -keel_d),
                                 (kz + 0.03, -keel_d)],
                                0.015))
        if _chance(rng, 0.5):
            parts.append(ellipsoid((0, -keel_d, kz - 0.02), (0.018, 0.018, 0.07), rows=4, sections=8))
        parts.append(profile_zy([(-0.38, -0.02), (-0.44, -0.02), (-0.45, -0.1), (-0.41, -0.1)], 0.01))
        dy = float(np.interp(0.0, zs, deck))
        cab_l = _u(rng, 0.25, 0.4)
        parts.append(rounded_box((_u(rng, 0.14, 0.2), _u(rng, 0.04, 0.06) + 0.02, cab_l), 0.01,
                                 (0, dy + 0.02, _u(rng, -0.15, -0.05)), corner=0.03))
        mz = _u(rng, 0.05, 0.15)
        mh = _u(rng, 1.0, 1.4)
        parts.append(cylinder((0, dy, mz), (0, dy + mh, mz), 0.008, 0.005, sections=8))
        boom_y = dy + _u(rng, 0.1, 0.14)
        boom_l = _u(rng, 0.35, 0.5)
        parts.append(cylinder((0, boom_y, mz - 0.01), (0, boom_y, mz - boom_l), 0.006, sections=6))
        head = np.array([0.0, dy + mh * 0.97, mz - 0.012])
        main = grid_sheet(np.array([[0, boom_y + 0.01, mz - 0.012], [0, boom_y + 0.01, mz - boom_l + 0.01],
                                    head + [0, 0, -0.03], head]), 4, 2)
        parts.append(main)
        if _chance(rng, 0.8):  # jib
            bow = np.array([0.0, float(deck[-1]) + 0.01, 0.5 * L - 0.01])
            clew = np.array([0.0, dy + 0.05, mz - _u(rng, 0.0, 0.1)])
            top = np.array([0.0, dy + mh * _u(rng, 0.7, 0.9), mz + 0.01])
            parts.append(sheet([bow, top, clew]))
            parts.append(cylinder(bow, np.array([0, dy + mh * 0.97, mz]), 0.002, sections=4))
        if _chance(rng, 0.5):  # spreaders
            parts.append(cylinder((-0.08, dy + mh * 0.6, mz), (0.08, dy + mh * 0.6, mz), 0.003, sections=4))
        return parts
    if variant == "motorboat":
        L = 1.0
        hull, zs, deck, half_w = _hull(L, _u(rng, 0.32, 0.4), _u(rng, 0.1, 0.14), _u(rng, 0.06, 0.09), 0.0,
                                       _u(rng, 0.02, 0.06), _u(rng, 0.8, 0.9), 0.5)
        parts.append(hull)
        dy = float(np.interp(0.0, zs, deck))
        bw = float(np.interp(0.0, zs, half_w))
        ws_z = _u(rng, -0.05, 0.15)
        k = np.arange(1, len(zs) - 1)
        parts += _both(tube(np.stack([half_w[k] + 0.004, deck[k] - 0.012, zs[k]], -1), 0.006,
                            sections=4))  # rub rail
        kind = _pick(rng, ("open", "cabin", "ttop"))
        if kind == "cabin":
            cl = _u(rng, 0.3, 0.45)
            ch = _u(rng, 0.08, 0.14)
            prof = [(ws_z + 0.05, dy), (ws_z - cl, dy), (ws_z - cl, dy + ch), (ws_z - 0.1, dy + ch),
                    (ws_z + 0.05, dy + 0.02)]
            parts.append(profile_zy(prof, bw * 1.5))
        else:
            parts.append(box((bw * 0.9, 0.06, 0.08), (0, dy + 0.03, ws_z - 0.12)))
            parts.append(box((bw * 1.6, 0.06, 0.006), (0, dy + 0.03, ws_z), rot_x(-35)))
            if kind == "ttop":
                top_y = dy + _u(rng, 0.18, 0.24)
                for sx in (1.0, -1.0):
                    for z in (ws_z - 0.05, ws_z - 0.25):
                        parts.append(cylinder((sx * bw * 0.5, dy, z), (sx * bw * 0.5, top_y, z), 0.004,
                                              sections=6))
                parts.append(box((bw * 1.3, 0.01, 0.3), (0, top_y, ws_z - 0.15)))
        if _chance(rng, 0.7):  # outboard motor(s)
            n = 1 if _chance(rng, 0.6) else 2
            for x in ((0.0,) if n == 1 else (-0.05, 0.05)):
                parts.append(rounded_box((0.05, 0.08, 0.07), 0.012, (x, dy + 0.02, -0.5 * L - 0.04)))
                parts.append(box((0.015, 0.14, 0.03), (x, dy - 0.08, -0.5 * L - 0.05)))
        if _chance(rng, 0.5):  # bow rail
            zr = np.linspace(0.15, 0.45, 5)
            rail = []
            for z in zr[::-1]:
                rail.append((float(np.interp(z, zs, half_w)) * 0.85, float(np.interp(z, zs, deck)) + 0.04, z))
            rail_pts = np.array(rail)
            parts += _both(tube(rail_pts, 0.0025, sections=4))
            for x, y, z in rail_pts[1:]:
                parts += _both(cylinder((x, y - 0.042, z), (x, y, z), 0.0018, sections=4))
        return parts
    # ship
    L = 1.0
    kind = _pick(rng, ("cargo", "liner", "warship"))
    beam = _u(rng, 0.12, 0.17)
    hull, zs, deck, half_w = _hull(L, beam, _u(rng, 0.04, 0.06), _u(rng, 0.035, 0.05),
                                   0.85 if kind != "warship" else 0.5,
                                   _u(rng, 0.005, 0.02), 0.7 if kind != "warship" else 0.5, 0.3)
    parts.append(hull)
    dy = float(deck.min())
    if kind == "cargo":
        sz = -0.5 * L + _u(rng, 0.06, 0.12)
        tiers = int(rng.integers(3, 6))
        y = dy
        for k in range(tiers):
            th = 0.022
            parts.append(box((beam * (0.85 - 0.05 * k), th, 0.07 - 0.005 * k), (0, y + th / 2, sz)))
            y += th
        parts.append(box((beam * 1.05, 0.01, 0.025), (0, y - 0.005, sz + 0.02)))  # bridge wings
        parts.append(box((0.025, 0.05, 0.03), (0, y + 0.025, sz - 0.03)))  # funnel
        rows = int(rng.integers(3, 6))
        z0, z1 = sz + 0.06, 0.5 * L - 0.15
        n_bays = int(rng.integers(5, 10))
        for b in range(n_bays):
            z = z0 + (b + 0.5) * (z1 - z0) / n_bays
            hw = float(np.interp(z, zs, half_w)) * 0.9
            parts.append(box((2 * hw, 0.015 * rows, (z1 - z0) / n_bays * 0.9), (0, dy + 0.0075 * rows, z)))
    elif kind == "liner":
        decks = int(rng.integers(3, 6))
        y = dy
        for k in range(decks):
            th = 0.02
            parts.append(box((beam * (0.85 - 0.04 * k), th, L * (0.7 - 0.08 * k)),
                             (0, y + th / 2, -0.04 + 0.01 * k)))
            y += th
        for f in range(int(rng.integers(1, 4))):
            fz = -0.15 + 0.1 * f
            parts.append(lathe([(0.0, 0.0), (0.02, 0.0), (0.018, 0.06), (0.0, 0.06)], sections=10,
                               center=(0, y, fz),
                               rotation=rot_x(-10)))
    else:  # warship
        parts.append(box((beam * 0.6, 0.05, 0.22), (0, dy + 0.025, -0.05)))
        parts.append(box((beam * 0.45, 0.04, 0.1), (0, dy + 0.07, 0.0)))
        mast_y = dy + _u(rng, 0.15, 0.22)
        parts.append(cylinder((0, dy + 0.09, 0.0), (0, mast_y, 0.0), 0.004, sections=6))
        parts.append(cylinder((-0.04, mast_y - 0.03, 0.0), (0.04, mast_y - 0.03, 0.0), 0.002, sections=4))
        parts.append(box((0.025, 0.04, 0.035), (0, dy + 0.07, -0.1)))
        for tz, direction in ((0.22, 1.0), (-0.3, -1.0)):
            parts.append(lathe([(0.0, 0.0), (0.025, 0.0), (0.02, 0.018), (0.0, 0.02)], sections=10,
                               center=(0, dy, tz)))
            parts.append(cylinder((0, dy + 0.01, tz), (0, dy + 0.014, tz + direction * 0.07), 0.003,
                                  sections=6))
    if _chance(rng, 0.7):  # mast with a crossbar
        mz = 0.5 * L - _u(rng, 0.08, 0.15)
        mh = _u(rng, 0.08, 0.14)
        parts.append(cylinder((0, dy, mz), (0, dy + mh, mz), 0.003, sections=6))
        parts.append(cylinder((-0.03, dy + mh * 0.8, mz), (0.03, dy + mh * 0.8, mz), 0.002, sections=4))
    return parts


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------

_GENERATORS: dict[str, Callable[[np.random.Generator, str], list[Part]]] = {
    "chair": _chair,
    "table": _table,
    "bench": _bench,
    "sofa": _sofa,
    "dresser": _dresser,
    "car": _car,
    "airplane": _airplane,
    "display": _display,
    "lamp": _lamp,
    "speaker": _speaker,
    "rifle": _rifle,
    "phone": _phone,
    "vessel": _vessel,
}


def generate_mesh(category: str, rng: np.random.Generator, variant: str | None = None) -> trimesh.Trimesh:
    """One random object of ``category`` (a name of :data:`amodal3d.CATEGORY_NAMES`), normalized to the
    ShapeNetCore v2 frame (+Y up, front +Z, bounding box centred, diagonal 1).

    ``variant`` forces a structural variant (one of ``VARIANTS[category]``); by default one is drawn
    from ``rng``. The mesh carries ``metadata["part_ids"]`` (int32 (F,), a part index per face) and
    ``metadata["variant"]``. Raises ``ValueError`` for an unknown category or variant."""
    if category not in _GENERATORS:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORY_NAMES)}")
    variants = VARIANTS[category]
    if variant is None:
        variant = variants[int(rng.integers(len(variants)))]
    elif variant not in variants:
        raise ValueError(f"unknown {category} variant {variant!r}; valid: {', '.join(variants)}")
    mesh = normalize_mesh(assemble(_GENERATORS[category](rng, variant)))
    mesh.metadata["variant"] = variant
    return mesh
