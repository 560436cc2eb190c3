"""Procedural sofa meshes: :func:`build` draws the parts of one sofa of a structural variant of
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
    cylinder,
    profile_zy,
    rot_x,
    rot_z,
    rounded_box,
    transform,
)


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
