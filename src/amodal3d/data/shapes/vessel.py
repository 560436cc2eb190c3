"""Procedural vessel meshes: :func:`build` draws the parts of one vessel of a structural variant of
:data:`amodal3d.data.shapes.procedural.VARIANTS` (metres, +Y up, front +Z)."""

from __future__ import annotations

import numpy as np

from amodal3d.data.shapes.common import (
    _both,
    _chance,
    _pick,
    _u,
    _wing,
)
from amodal3d.data.shapes.primitives import (
    Part,
    box,
    circle,
    cylinder,
    ellipsoid,
    grid_sheet,
    lathe,
    loft,
    profile_zy,
    rot_x,
    rot_y,
    rot_z,
    rounded_box,
    sheet,
    transform,
    tube,
)


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


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
