"""Procedural bench meshes: :func:`build` draws the parts of one bench of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _fillet,
    _leg,
    _pick,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    profile_zy,
    rot_x,
    rounded_box,
    transform,
    tube,
)


def _slats(length: float, z0: float, z1: float, y: float, n: int, thick: float, gap_frac: float
           ) -> list[Part]:
    """``n`` boards along x of length ``length`` covering z0..z1 (z0 < z1), top at height ``y``."""
    pitch = (z1 - z0) / n
    width = pitch * (1.0 - gap_frac)
    return [box((length, thick, width), (0, y - thick / 2, z0 + pitch * (i + 0.5))) for i in range(n)]


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
