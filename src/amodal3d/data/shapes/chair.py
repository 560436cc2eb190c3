"""Procedural chair meshes: :func:`build` draws the parts of one chair of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _fillet,
    _leg,
    _panel_xy,
    _pick,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    cylinder,
    disc,
    prism,
    profile_xz,
    profile_zy,
    rot_x,
    rounded_box,
    rounded_rect,
    transform,
    tube,
)


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
