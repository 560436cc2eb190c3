"""Differentiable silhouette renderer (step 4): mesh + camera -> soft/hard silhouette.

Split as pytorch3d: :mod:`.cameras` (vertices -> pixel ``uv`` + depth), :mod:`.rasterize`
(``uv`` -> fragments), :mod:`.blend` (fragments -> silhouette (B, H, W) in [0, 1]); :mod:`.mesh`
holds the icosphere template and helpers. Typical use::

    uv, depth = project_viewpoint(verts, az, el, dist, focal, (64, 64), offset, scale)
    sil = soft_silhouette(rasterize_soft(uv, faces, (64, 64), sigma=0.1, depth=depth))  # (B, 64, 64)
    hard = rasterize_hard(uv, depth, faces, (64, 64)).mask
"""

from amodal3d.render.blend import (
    hard_silhouette,
    log_complement,
    render_hard_silhouette,
    render_soft_silhouette,
    soft_silhouette,
    soft_silhouette_dense,
)
from amodal3d.render.cameras import DEFAULT_FOV_DEG, ViewpointCamera, project_full, project_viewpoint
from amodal3d.render.mesh import (
    edges,
    face_normals,
    face_vertices,
    icosphere,
    mirror_index,
    reflect,
    symmetrize,
    vertex_normals,
)
from amodal3d.render.rasterize import (
    DEFAULT_EPS,
    DEFAULT_SIGMA,
    HardFragments,
    SoftFragments,
    pixel_centres,
    rasterize_hard,
    rasterize_soft,
    sigma_from_ndc,
    signed_dist2,
    soft_margin,
)

__all__ = [
    "DEFAULT_EPS", "DEFAULT_FOV_DEG", "DEFAULT_SIGMA", "HardFragments", "SoftFragments", "ViewpointCamera",
    "edges", "face_normals", "face_vertices", "hard_silhouette", "icosphere", "log_complement",
    "mirror_index", "pixel_centres", "project_full", "project_viewpoint", "rasterize_hard",
    "rasterize_soft", "reflect", "render_hard_silhouette", "render_soft_silhouette", "sigma_from_ndc",
    "signed_dist2", "soft_margin", "soft_silhouette", "soft_silhouette_dense", "symmetrize",
    "vertex_normals",
]
