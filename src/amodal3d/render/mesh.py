"""Template meshes and small helpers on batched vertices with shared faces.

Conventions: ``verts`` (B, V, 3) float in the object frame of :mod:`amodal3d.geometry` (+Y up, front
+Z), ``faces`` (F, 3) long shared by the whole batch, counter-clockwise seen from outside (outward
normals). The renderer itself ignores the winding (no back-face culling).
"""

from __future__ import annotations

import torch

ICOSPHERE_SUBDIVISIONS = 3  # 642 vertices, 1280 faces


def icosphere(subdivisions: int = ICOSPHERE_SUBDIVISIONS, radius: float = 1.0,
              dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Icosphere centred at the origin: ``verts`` (V, 3) ``dtype`` and ``faces`` (F, 3) long.

    ``subdivisions=3`` gives V = 642, F = 1280. The vertex set is symmetric under x -> -x (and
    y -> -y, z -> -z), see :func:`mirror_index`. Built with ``trimesh.creation.icosphere``.
    """
    import trimesh  # local import: only needed to build templates

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    verts = torch.as_tensor(mesh.vertices, dtype=dtype, device=device)
    faces = torch.as_tensor(mesh.faces, dtype=torch.long, device=device)
    return verts, faces


def mirror_index(verts: torch.Tensor, axis: int = 0, atol: float = 1e-5) -> torch.Tensor:
    """Index map (V,) long with ``verts[m[i]] == verts[i]`` reflected about the plane ``axis = 0``.

    ``verts`` (V, 3) template vertices (object frame; ``axis=0`` is the bilateral x = 0 plane).
    ``m`` is an involution (``m[m] == arange(V)``); vertices on the plane map to themselves.
    Raises ``ValueError`` when the template is not mirror-symmetric within ``atol``.
    """
    if verts.dim() != 2 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be (V, 3), got {tuple(verts.shape)}")
    v = verts.detach().to(torch.float64)
    reflected = v.clone()
    reflected[:, axis] = -reflected[:, axis]
    dist, index = torch.cdist(reflected, v).min(dim=1)
    if dist.max() > atol or not torch.equal(index[index], torch.arange(len(v), device=v.device)):
        raise ValueError(f"template is not mirror-symmetric about axis {axis} (max error {dist.max():.3g})")
    return index.to(verts.device)


def reflect(verts: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """Reflect points (..., 3) about the plane ``axis = 0`` (negate that coordinate)."""
    sign = torch.ones(3, dtype=verts.dtype, device=verts.device)
    sign[axis] = -1.0
    return verts * sign


def symmetrize(verts: torch.Tensor, mirror: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """Closest bilaterally symmetric shape: ``(v + reflect(v[..., m, :])) / 2``.

    ``verts`` (..., V, 3), ``mirror`` (V,) long from :func:`mirror_index`. Differentiable. Vertices on
    the plane get their ``axis`` coordinate zeroed.
    """
    return 0.5 * (verts + reflect(verts[..., mirror, :], axis))


def face_vertices(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Gather the corners of every face: ``verts`` (B, V, D), ``faces`` (F, 3) -> (B, F, 3, D)."""
    return verts[:, faces]


def face_normals(verts: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Face normals (B, F, 3) from ``verts`` (B, V, 3); length = 2 * area when not normalised."""
    tri = face_vertices(verts, faces)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return torch.nn.functional.normalize(n, dim=-1) if normalize else n


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit area-weighted vertex normals (B, V, 3) from ``verts`` (B, V, 3)."""
    n = face_normals(verts, faces, normalize=False)  # (B, F, 3)
    out = torch.zeros_like(verts)
    for k in range(3):
        out = out.index_add(1, faces[:, k], n)
    return torch.nn.functional.normalize(out, dim=-1)


def edges(faces: torch.Tensor) -> torch.Tensor:
    """Unique undirected edges (E, 2) long, sorted ``i < j``, of a triangle list ``faces`` (F, 3)."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], dim=0)
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)
