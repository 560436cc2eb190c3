"""Shaded previews of meshes and contact sheets, so that a person can judge generated shapes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw

from amodal3d.data.raycast import raycast_scene
from amodal3d.geometry import focal_from_fov, intrinsics, view_transform
from amodal3d.io import atomic_save_image


def shaded_view(mesh: trimesh.Trimesh, azimuth: float = 40.0, elevation: float = 20.0,
                size: int = 192, distance: float = 2.0, fov: float = 30.0) -> np.ndarray:
    """Grey Lambertian rendering (size, size, 3) uint8 of a mesh in the object frame."""
    rotation, translation = view_transform(torch.tensor(azimuth, dtype=torch.float64),
                                           torch.tensor(elevation, dtype=torch.float64),
                                           torch.tensor(distance, dtype=torch.float64))
    verts = np.asarray(mesh.vertices) @ rotation.numpy().T + translation.numpy()
    K = intrinsics(focal_from_fov(fov, size), size, size).numpy()
    result = raycast_scene([trimesh.Trimesh(verts, mesh.faces, process=False)], K, size, size)
    light = np.array([-0.4, -0.6, -0.7]) / np.linalg.norm([-0.4, -0.6, -0.7])  # towards the light
    shade = 0.25 + 0.75 * np.clip(result.normal @ light, 0.0, 1.0)
    image = np.full((size, size, 3), 255, dtype=np.float64)
    hit = result.instance >= 0
    image[hit] = (shade[hit, None] * np.array([120.0, 150.0, 200.0]))
    return image.astype(np.uint8)


def contact_sheet(meshes: Sequence[trimesh.Trimesh], labels: Sequence[str], out: str | Path,
                  columns: int = 4, size: int = 192, azimuth: float = 40.0) -> Path:
    """Write a grid of shaded views (one per mesh, label below) as a PNG; returns its path."""
    if not meshes or columns < 1:
        raise ValueError(f"contact_sheet: needs at least one mesh and one column, got {len(meshes)} and {columns}")
    rows = (len(meshes) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * size, rows * (size + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (mesh, label) in enumerate(zip(meshes, labels)):
        x, y = (i % columns) * size, (i // columns) * (size + 14)
        sheet.paste(Image.fromarray(shaded_view(mesh, azimuth=azimuth, size=size)), (x, y))
        draw.text((x + 4, y + size), label, fill=(0, 0, 0))
    return atomic_save_image(sheet, out)
