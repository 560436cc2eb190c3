"""Procedural car meshes: :func:`build` draws the parts of one car of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _u,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    box_between,
    disc,
    ellipsoid,
    loft,
    revolve_loop,
    rot_x,
    rot_z,
    tube,
)

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


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
