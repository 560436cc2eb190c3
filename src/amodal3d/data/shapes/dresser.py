"""Procedural dresser meshes: :func:`build` draws the parts of one dresser of a structural variant of
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
    box_between,
    cylinder,
    ellipsoid,
    rounded_box,
)


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


def build(rng: np.random.Generator, variant: str) -> list[Part]:
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
