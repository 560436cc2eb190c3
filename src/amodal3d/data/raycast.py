"""Exact ground truth by ray casting (trimesh + embree).

One ray per pixel centre (see :mod:`amodal3d.geometry` for the pixel convention). The nearest hit
over all objects gives the depth buffer, the visible instance map and the surface normal; each
object cast alone gives its full (amodal) silhouette.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from amodal3d.geometry import pixel_rays


@dataclass(frozen=True)
class RayCastResult:
    """Per-pixel ground truth of one image (H x W)."""

    depth: np.ndarray        # (H, W) float32 distance along the camera z axis; inf on background
    instance: np.ndarray     # (H, W) int32 index of the visible object; -1 on background
    face: np.ndarray         # (H, W) int32 face index inside that object's mesh; -1 on background
    normal: np.ndarray       # (H, W, 3) float32 unit normal in the camera frame, facing the camera
    amodal: np.ndarray       # (N, H, W) bool full silhouette of each object


def ray_backend() -> str:
    """The intersector ray casting uses: ``"embree"`` (trimesh's ``ray_pyembree`` over embreex, a
    dependency) or ``"trimesh"`` (trimesh's pure-Python fallback when embree cannot be imported: the same
    masks up to grazing edges, but many times slower)."""
    return "embree" if trimesh.ray.has_embree else "trimesh"


def _intersector(mesh: trimesh.Trimesh):
    """An embree intersector when embree is installed (it is a dependency), else trimesh's own, with a
    warning that says so."""
    if trimesh.ray.has_embree:
        return trimesh.ray.ray_pyembree.RayMeshIntersector(mesh)
    warnings.warn("embree (the embreex package) cannot be imported: ray casting falls back to trimesh's "
                  "pure-Python intersector, many times slower (pip install embreex)", RuntimeWarning, stacklevel=2)
    return trimesh.ray.ray_triangle.RayMeshIntersector(mesh)


def silhouette(mesh_cam: trimesh.Trimesh, directions: np.ndarray, bounds: tuple[int, int, int, int]
               ) -> np.ndarray:
    """Full silhouette of one mesh (in the camera frame, camera at the origin).

    ``directions`` (H, W, 3) unit rays; ``bounds`` (row0, row1, col0, col1) the pixel window that
    may be hit (rays outside it are not cast). Returns a bool mask (H, W)."""
    height, width = directions.shape[:2]
    mask = np.zeros((height, width), dtype=bool)
    r0, r1, c0, c1 = bounds
    if r1 <= r0 or c1 <= c0:
        return mask
    window = directions[r0:r1, c0:c1].reshape(-1, 3)
    hit = _intersector(mesh_cam).intersects_any(np.zeros_like(window), window)
    mask[r0:r1, c0:c1] = hit.reshape(r1 - r0, c1 - c0)
    return mask


def projected_bounds(vertices_cam: np.ndarray, K: np.ndarray, width: int, height: int
                     ) -> tuple[tuple[int, int, int, int], bool]:
    """Pixel window (row0, row1, col0, col1), clipped to the image, that contains the projection of
    ``vertices_cam`` (V, 3) (all in front of the camera), and whether the projection is cut by the
    image border (``truncated``)."""
    uv = vertices_cam[:, :2] / vertices_cam[:, 2:3] * np.diag(K)[:2] + K[:2, 2]
    c0, r0 = np.floor(uv.min(axis=0)).astype(int) - 1
    c1, r1 = np.ceil(uv.max(axis=0)).astype(int) + 1
    truncated = bool(uv.min() < 0 or uv[:, 0].max() > width or uv[:, 1].max() > height)
    return (max(r0, 0), min(r1, height), max(c0, 0), min(c1, width)), truncated


def raycast_scene(meshes_cam: list[trimesh.Trimesh], K: np.ndarray, width: int, height: int
                  ) -> RayCastResult:
    """Cast one ray per pixel through a scene of meshes given in the camera frame (camera at the
    origin, OpenCV axes, every vertex at z > 0). ``K`` (3, 3) pinhole intrinsics in pixels."""
    directions = pixel_rays(torch.as_tensor(K), width, height).numpy()
    flat = directions.reshape(-1, 3)
    n = len(meshes_cam)
    face_offsets = np.cumsum([0] + [len(m.faces) for m in meshes_cam])
    scene = trimesh.util.concatenate(meshes_cam) if n > 1 else meshes_cam[0]
    locations, ray_index, tri_index = _intersector(scene).intersects_location(
        np.zeros_like(flat), flat, multiple_hits=False)

    depth = np.full(height * width, np.inf, dtype=np.float32)
    instance = np.full(height * width, -1, dtype=np.int32)
    face = np.full(height * width, -1, dtype=np.int32)
    normal = np.zeros((height * width, 3), dtype=np.float32)
    if len(ray_index):
        depth[ray_index] = locations[:, 2]
        obj = np.searchsorted(face_offsets, tri_index, side="right") - 1
        instance[ray_index] = obj
        face[ray_index] = tri_index - face_offsets[obj]
        hit_normals = scene.face_normals[tri_index]
        facing = np.sign(-(hit_normals * flat[ray_index]).sum(axis=1, keepdims=True))
        normal[ray_index] = hit_normals * np.where(facing == 0, 1.0, facing)

    amodal = np.zeros((n, height, width), dtype=bool)
    for k, mesh in enumerate(meshes_cam):
        bounds, _ = projected_bounds(np.asarray(mesh.vertices), K, width, height)
        amodal[k] = silhouette(mesh, directions, bounds)
    # A ray that hits an object in the combined cast also hits it alone; embree's watertight test
    # agrees, but make the invariant visible ⊆ amodal exact at grazing edges.
    for k in range(n):
        amodal[k] |= (instance == k).reshape(height, width)
    return RayCastResult(depth.reshape(height, width), instance.reshape(height, width),
                         face.reshape(height, width), normal.reshape(height, width, 3), amodal)
