"""Overlays people would rather look at than read: visible part solid, hidden part hatched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from amodal3d.io import atomic_save_image

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                    [0, 128, 128], [220, 190, 255], [170, 110, 40], [128, 0, 0], [0, 0, 128]], np.float64)


def _hatch(height: int, width: int, period: int = 6) -> np.ndarray:
    """Diagonal stripes (H, W) bool, one stripe pixel in three."""
    rows, cols = np.indices((height, width))
    return ((rows + cols) % period) < 2


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` (H, W) bool with a 4-neighbour outside it."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay(image: np.ndarray, visible: Sequence[np.ndarray], amodal: Sequence[np.ndarray],
            labels: Sequence[str] = (), alpha: float = 0.45) -> Image.Image:
    """Draw instances on ``image`` (H, W, 3) uint8: visible part tinted solid, hidden part
    (amodal − visible) hatched in the same colour, amodal outline, a label at the box's corner."""
    out = image.astype(np.float64).copy()
    height, width = out.shape[:2]
    hatch = _hatch(height, width)
    for k, (vis, amo) in enumerate(zip(visible, amodal)):
        colour = PALETTE[k % len(PALETTE)]
        out[vis] = (1 - alpha) * out[vis] + alpha * colour
        hidden = amo & ~vis & hatch
        out[hidden] = 0.2 * out[hidden] + 0.8 * colour
        out[_outline(amo)] = colour
    canvas = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for k, (label, amo) in enumerate(zip(labels, amodal)):
        rows, cols = np.nonzero(amo)
        if len(rows) and label:
            x, y = int(cols.min()), max(int(rows.min()) - 11, 0)
            draw.rectangle([x, y, x + 6 * len(label) + 2, y + 10], fill=tuple(int(c) for c in PALETTE[k % 15]))
            draw.text((x + 1, y - 1), label, fill=(0, 0, 0))
    return canvas


def grid(tiles: Sequence[Image.Image], columns: int, out: str | Path | None = None,
         captions: Sequence[str] = ()) -> Image.Image:
    """Tile images (all the size of the first) in a grid with optional captions; save if ``out``."""
    if not tiles or columns < 1:
        raise ValueError(f"grid: needs at least one tile and one column, got {len(tiles)} and {columns}")
    w, h = tiles[0].size
    cap = 14 if captions else 0
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + cap)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x, y = (i % columns) * w, (i // columns) * (h + cap)
        sheet.paste(tile.resize((w, h)), (x, y))
        if captions:
            draw.text((x + 3, y + h), captions[i], fill=(0, 0, 0))
    if out is not None:
        atomic_save_image(sheet, out)
    return sheet
