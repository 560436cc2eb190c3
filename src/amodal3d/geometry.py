"""Camera conventions shared by the data engine (ray casting) and the renderer (rasterising).

Everything that projects a 3D point to a pixel goes through these pure functions, so that the
ground truth of the data engine and the differentiable renderer agree by construction.

Conventions
-----------
* Object frame: +Y up, the object's front faces +Z, centred at the origin, bounding-box diagonal 1
  (the axes of ShapeNetCore v2 ``model_normalized``, whose front faces -Z; the data engine turns
  ShapeNetCore v1 and v2 meshes into this frame).
* Viewpoint ``(azimuth, elevation, distance)`` in degrees / object units: the camera centre is
  ``distance * (cos(el) sin(az), sin(el), cos(el) cos(az))`` in the object frame, the camera looks at
  the object origin with world-up +Y. Azimuth 0 looks at the front, 90 at the object's +X side.
* Camera frame (OpenCV): x right, y down, z forward (depth > 0 in front of the camera).
  ``X_cam = R @ X + t`` with ``R`` (3, 3) world-to-camera rows ``[right, down, forward]``.
* Pixels: ``u = fx * x / z + cx`` and ``v = fy * y / z + cy`` with ``(u, v)`` in pixel units, y down,
  pixel ``(i, j)`` (row, column) covering ``[j, j+1) x [i, i+1)``: its centre is ``(j + 0.5, i + 0.5)``.
  For a W x H image with a centred principal point, ``cx = W / 2`` and ``cy = H / 2``.

All functions are batched over leading dimensions and work on any device and float dtype.
"""

from __future__ import annotations

import math

import torch

WORLD_UP = (0.0, 1.0, 0.0)


def camera_position(azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor,
                    distance: torch.Tensor) -> torch.Tensor:
    """Camera centre in the object frame. Inputs (...,); output (..., 3)."""
    az = torch.deg2rad(azimuth_deg)
    el = torch.deg2rad(elevation_deg)
    return torch.stack([distance * torch.cos(el) * torch.sin(az),
                        distance * torch.sin(el),
                        distance * torch.cos(el) * torch.cos(az)], dim=-1)


def viewpoint_from_position(position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`camera_position`. ``position`` (..., 3) -> azimuth in (-180, 180], elevation
    in [-90, 90] (degrees) and distance, each (...,)."""
    x, y, z = position.unbind(-1)
    distance = position.norm(dim=-1)
    azimuth = torch.rad2deg(torch.atan2(x, z))
    azimuth = torch.where(azimuth <= -180.0, azimuth + 360.0, azimuth)  # atan2(-0, z<0) = -180
    elevation = torch.rad2deg(torch.atan2(y, torch.hypot(x, z)))  # asin(y/d) loses precision near the poles
    return azimuth, elevation, distance


def look_at_rotation(position: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-camera rotation (..., 3, 3) of a camera at ``position`` (..., 3) looking at ``target``
    (default the origin) with world-up +Y. Rows: right, down, forward (OpenCV camera frame).
    Undefined when looking straight up or down (elevation ±90°)."""
    if target is None:
        target = torch.zeros_like(position)
    forward = torch.nn.functional.normalize(target - position, dim=-1)
    up = position.new_tensor(WORLD_UP).expand_as(forward)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up, dim=-1), dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    return torch.stack([right, down, forward], dim=-2)


def view_transform(azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor,
                   distance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Object-to-camera ``(R (..., 3, 3), t (..., 3))`` of the viewpoint camera: ``X_cam = R X + t``."""
    position = camera_position(azimuth_deg, elevation_deg, distance)
    rotation = look_at_rotation(position)
    translation = -(rotation @ position.unsqueeze(-1)).squeeze(-1)
    return rotation, translation


def transform_points(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``points`` (..., N, 3), ``rotation`` (..., 3, 3), ``translation`` (..., 3) -> (..., N, 3)."""
    return points @ rotation.transpose(-1, -2) + translation.unsqueeze(-2)


def focal_from_fov(fov_deg: float, width: int) -> float:
    """Focal length in pixels of a camera whose horizontal field of view is ``fov_deg``."""
    return 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)


def intrinsics(focal: float, width: int, height: int) -> torch.Tensor:
    """3x3 pinhole matrix (float64) with square pixels and a centred principal point."""
    return torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]],
                        dtype=torch.float64)


def project(points_cam: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection. ``points_cam`` (..., N, 3) in the camera frame, ``K`` (..., 3, 3).
    Returns pixel coordinates (..., N, 2) as (u, v) = (x, y), y down, and depth z (..., N)."""
    z = points_cam[..., 2]
    uvw = points_cam @ K.to(points_cam).transpose(-1, -2)
    return uvw[..., :2] / z.unsqueeze(-1), z


def pixel_rays(K: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Unit ray directions (H, W, 3) in the camera frame through each pixel centre."""
    K = K.to(torch.float64)
    jj, ii = torch.meshgrid(torch.arange(width, dtype=torch.float64) + 0.5,
                            torch.arange(height, dtype=torch.float64) + 0.5, indexing="xy")
    x = (jj - K[0, 2]) / K[0, 0]
    y = (ii - K[1, 2]) / K[1, 1]
    return torch.nn.functional.normalize(torch.stack([x, y, torch.ones_like(x)], dim=-1), dim=-1)


def rotation_y(angle_deg: torch.Tensor) -> torch.Tensor:
    """Rotation (..., 3, 3) about +Y by ``angle_deg`` (right-handed: +Z turns towards +X)."""
    a = torch.deg2rad(angle_deg)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1),
                        torch.stack([-s, z, c], -1)], -2)


def rotation_x(angle_deg: torch.Tensor) -> torch.Tensor:
    """Rotation (..., 3, 3) about +X by ``angle_deg`` (right-handed: +Y turns towards +Z)."""
    a = torch.deg2rad(angle_deg)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([o, z, z], -1), torch.stack([z, c, -s], -1),
                        torch.stack([z, s, c], -1)], -2)


def rotation_z(angle_deg: torch.Tensor) -> torch.Tensor:
    """Rotation (..., 3, 3) about +Z by ``angle_deg`` (right-handed: +X turns towards +Y)."""
    a = torch.deg2rad(angle_deg)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1),
                        torch.stack([z, z, o], -1)], -2)
