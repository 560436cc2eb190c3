"""Cameras of the renderer: object-frame vertices -> pixel coordinates + depth.

All conventions are those of :mod:`amodal3d.geometry` (OpenCV camera frame, y down, pixel ``(i, j)``
covering ``[j, j+1) x [i, i+1)`` so its centre is ``(j + 0.5, i + 0.5)``). Two cameras:

* :func:`project_viewpoint` / :class:`ViewpointCamera` -- the camera of the shape/viewpoint stage: a
  perspective camera at ``(azimuth, elevation, distance)`` looking at the object origin
  (:func:`amodal3d.geometry.view_transform`), a canonical focal length, then a 2D similarity that
  places the projection inside the ROI raster (``H x W`` pixels)::

      X_cam = R(az, el) X + t(dist)                 # geometry.view_transform
      u = W / 2 + offset_x + scale * focal * x_cam / z_cam
      v = H / 2 + offset_y + scale * focal * y_cam / z_cam
      depth = z_cam

  ``focal``, ``offset`` and the output are in ROI pixels; ``scale`` is dimensionless (1 = the plain
  pinhole). So the object origin lands on the ROI centre ``(W/2, H/2)`` when ``offset = 0``.
* :func:`project_full` -- a full object-to-camera pose ``(R, t)`` and intrinsics ``K`` (the data
  engine's per-instance pose and per-image ``K``) into image pixels, i.e. exactly
  ``geometry.project(geometry.transform_points(X, R, t), K)``.

Both return ``uv`` (B, V, 2) = (x right, y down) pixel coordinates and ``depth`` (B, V) (> 0 in front
of the camera), ready for :func:`amodal3d.render.rasterize.rasterize_soft` / ``rasterize_hard``.
The device and dtype follow the inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from amodal3d import geometry

DEFAULT_FOV_DEG = 30.0  # canonical horizontal field of view of the ROI camera


def project_viewpoint(verts: torch.Tensor, azimuth: torch.Tensor, elevation: torch.Tensor,
                      distance: torch.Tensor, focal: float | torch.Tensor,
                      image_size: tuple[int, int], offset: torch.Tensor | None = None,
                      scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Project object-frame vertices with a viewpoint camera into ROI pixel coordinates.

    Args:
        verts: (B, V, 3) float, object frame.
        azimuth, elevation: (B,) degrees (geometry convention: az 0 sees the front +Z, az 90 the +X
            side; elevation > 0 looks from above; undefined at +-90).
        distance: (B,) camera-to-origin distance, object units (> 0).
        focal: canonical focal length in ROI pixels (float, or (B,) tensor).
        image_size: ``(H, W)`` of the ROI raster.
        offset: (B, 2) pixel shift ``(dx, dy)`` (x right, y down) of the projected origin from the ROI
            centre ``(W/2, H/2)``; default 0.
        scale: (B,) dimensionless zoom about that point; default 1.

    Returns:
        ``uv`` (B, V, 2) ROI pixel coordinates ``(u, v)``, y down, pixel centres at ``+0.5``;
        ``depth`` (B, V) camera-frame z. Differentiable w.r.t. every tensor input.
    """
    height, width = image_size
    rotation, translation = geometry.view_transform(azimuth, elevation, distance)  # (B,3,3), (B,3)
    cam = geometry.transform_points(verts, rotation.to(verts), translation.to(verts))
    depth = cam[..., 2]
    xy = cam[..., :2] / depth.unsqueeze(-1)
    f = torch.as_tensor(focal, dtype=verts.dtype, device=verts.device)
    if f.dim() == 1:
        f = f[:, None, None]
    if scale is not None:
        f = f * scale.to(verts)[:, None, None]
    centre = verts.new_tensor([width / 2.0, height / 2.0])
    uv = f * xy + centre
    if offset is not None:
        uv = uv + offset.to(verts)[:, None, :]
    return uv, depth


def project_full(verts: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                 K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project object-frame vertices with a full pose and intrinsics into image pixels.

    ``verts`` (B, V, 3); ``rotation`` (B, 3, 3) and ``translation`` (B, 3) object-to-camera
    (``X_cam = R X + t``, OpenCV frame); ``K`` (3, 3) or (B, 3, 3) pinhole intrinsics in pixels
    (e.g. :func:`amodal3d.geometry.intrinsics`). Returns ``uv`` (B, V, 2) image pixel coordinates
    (x right, y down, pixel centres at +0.5) and ``depth`` (B, V). dtype/device follow ``verts``.
    """
    cam = geometry.transform_points(verts, rotation.to(verts), translation.to(verts))
    uv, depth = geometry.project(cam, K.to(verts))  # (B, V, 3) @ (B | -, 3, 3)^T
    return uv, depth


class ViewpointCamera(nn.Module):
    """ROI camera of fixed raster size and canonical focal length (no parameters; device follows
    the inputs, so ``.to(device)`` is a no-op). ``forward`` = :func:`project_viewpoint`.

    ``focal`` defaults to the focal length of a ``fov_deg`` horizontal field of view over ``W``:
    ``geometry.focal_from_fov(fov_deg, W)`` (30 degrees: a unit-diagonal object at distance 2 spans
    about 0.9 of the ROI width).
    """

    def __init__(self, image_size: tuple[int, int], focal: float | None = None,
                 fov_deg: float = DEFAULT_FOV_DEG) -> None:
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if focal is None:
            focal = geometry.focal_from_fov(fov_deg, self.image_size[1])
        self.focal = float(focal)

    def forward(self, verts: torch.Tensor, azimuth: torch.Tensor, elevation: torch.Tensor,
                distance: torch.Tensor, offset: torch.Tensor | None = None,
                scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return project_viewpoint(verts, azimuth, elevation, distance, self.focal, self.image_size,
                                 offset=offset, scale=scale)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, focal={self.focal:.3f}"
