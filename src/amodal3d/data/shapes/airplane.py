"""Procedural airplane meshes: :func:`build` draws the parts of one airplane of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _u,
    _wing,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    circle,
    cylinder,
    disc,
    ellipsoid,
    lathe,
    loft,
    rot_x,
    rot_y,
    rot_z,
)


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


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
