"""Procedural table meshes: :func:`build` draws the parts of one table of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _leg,
    _pick,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    lathe,
    rot_x,
    rounded_box,
    transform,
    tube,
)


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
