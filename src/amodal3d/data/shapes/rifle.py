"""Procedural rifle meshes: :func:`build` draws the parts of one rifle of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _fillet,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    cylinder,
    ellipsoid,
    lathe,
    profile_zy,
    rot_x,
    rounded_box,
    tube,
)

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


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
