"""One synthetic image: sample a 3D scene of several objects in front of one perspective camera,
ray cast it, shade it and write its annotations in the schema of docs/schema.md.

Frames: each object is placed by an object-to-camera transform ``X_cam = scale * R @ X_obj + t``
(OpenCV camera frame, see :mod:`amodal3d.geometry`); the image uses intrinsics ``K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw, ImageFilter

from amodal3d import CATEGORY_ID
from amodal3d.data.meshes import MeshSource
from amodal3d.data.raycast import RayCastResult, projected_bounds, raycast_scene
from amodal3d.errors import MeshError
from amodal3d.geometry import (
    focal_from_fov,
    intrinsics,
    look_at_rotation,
    rotation_x,
    rotation_y,
    rotation_z,
    viewpoint_from_position,
)
from amodal3d.masks import encode_rle, mask_to_bbox

SCENE_DRAWS = 20  # draws of a scene that loses every object before its split is given up


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Lengths are in units of an object's bounding-box diagonal."""

    size: int = 256                           # image width = height, pixels
    min_objects: int = 2
    max_objects: int = 4
    fov_deg: float = 40.0                     # horizontal field of view
    camera_pitch_deg: tuple[float, float] = (0.0, 35.0)   # camera looks down by this much
    tilt_deg: float = 8.0                     # std of the small random tilt of each object
    scale_range: tuple[float, float] = (0.75, 1.25)
    depth_range: tuple[float, float] = (1.8, 6.0)
    overlap_range: tuple[float, float] = (0.1, 0.6)  # image distance to the anchor / sum of radii
    in_front_prob: float = 0.9                # a new object goes in front of its anchor, else behind
    min_visible_fraction: float = 0.05        # instances less visible than this are removed
    part_colour_prob: float = 0.6             # per-part colours, else one colour per object


@dataclass(frozen=True)
class PlacedObject:
    category: str
    mesh_id: str
    rotation: np.ndarray     # (3, 3) object-to-camera rotation
    translation: np.ndarray  # (3,) object centre in the camera frame
    scale: float             # bounding-box diagonal in scene units

    def vertices_cam(self, mesh: trimesh.Trimesh) -> np.ndarray:
        return self.scale * np.asarray(mesh.vertices) @ self.rotation.T + self.translation

    def viewpoint(self) -> dict:
        """Camera (azimuth, elevation in degrees, distance in object units) in the object frame."""
        position = torch.as_tensor(-self.rotation.T @ self.translation / self.scale)
        az, el, dist = viewpoint_from_position(position)
        return {"azimuth": round(float(az), 4), "elevation": round(float(el), 4),
                "distance": round(float(dist), 5)}


def _camera_rotation(pitch_deg: float) -> np.ndarray:
    """World (+Y up) to camera rotation of a camera at the origin looking down by ``pitch_deg``
    towards world -Z, so that an object with yaw 0 shows the camera its front (+Z)."""
    pitch = np.radians(pitch_deg)
    target = torch.tensor([0.0, -np.sin(pitch), -np.cos(pitch)], dtype=torch.float64)
    return look_at_rotation(torch.zeros(3, dtype=torch.float64), target).numpy()


def _f64(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def _candidate_position(rng: np.random.Generator, placed: list[PlacedObject], scale: float,
                        config: SceneConfig, K: np.ndarray) -> np.ndarray | None:
    """A camera-frame centre for a new object of size ``scale``: the first object near the image
    centre and far, later ones overlapping a random earlier one (the anchor) in the image, mostly in
    front of it, with no two bounding spheres meeting. None when the draw fails.

    With every object annotated, the nearest object of a scene is unoccluded, so the share of
    unoccluded instances is at least about 1 / (objects per scene)."""
    focal, (cx, cy) = K[0, 0], K[:2, 2]
    if not placed:
        u, v = np.array([cx, cy]) + rng.uniform(-0.2, 0.2, 2) * config.size
        near, far = config.depth_range
        depth = rng.uniform(near + 0.5 * (far - near), far)  # later objects mostly come in front
    else:
        # mostly a chain (each object hides part of the previous one), sometimes any earlier one
        anchor = placed[-1] if rng.uniform() < 0.7 else placed[int(rng.integers(len(placed)))]
        anchor_uv = anchor.translation[:2] / anchor.translation[2] * focal + [cx, cy]
        reach = rng.uniform(*config.overlap_range) * focal * (anchor.scale + scale) / 2.0 / anchor.translation[2]
        angle = rng.uniform(0.0, 2 * np.pi)
        u, v = np.clip(anchor_uv + reach * np.array([np.cos(angle), np.sin(angle)]),
                       0.05 * config.size, 0.95 * config.size)
        # the smallest depth gap that keeps the bounding spheres apart, given the lateral offset
        lateral = np.linalg.norm(np.array([u, v]) - anchor_uv) * anchor.translation[2] / focal
        gap = np.sqrt(max(((scale + anchor.scale) / 2.0) ** 2 - lateral**2, 0.0)) + rng.uniform(0.05, 0.6)
        depth = anchor.translation[2] + gap * (-1.0 if rng.uniform() < config.in_front_prob else 1.0)
    if not config.depth_range[0] <= depth <= config.depth_range[1]:
        return None
    centre = np.array([(u - cx) * depth / focal, (v - cy) * depth / focal, depth])
    if any(np.linalg.norm(centre - p.translation) <= (scale + p.scale) / 2.0 for p in placed):
        return None
    return centre


def sample_placements(rng: np.random.Generator, source: MeshSource, split: str, config: SceneConfig,
                      K: np.ndarray, attempts: int = 20) -> list[PlacedObject]:
    """Draw ``min_objects..max_objects`` objects whose projections overlap (see
    :func:`_candidate_position`), each of a category that has meshes in ``split``; an object that finds
    no free place in ``attempts`` draws is skipped. Raises :class:`MeshError` naming the split when it
    has no mesh (left) that loads."""
    categories = source.categories_in(split)
    if not categories:
        raise MeshError(f"no mesh could be placed for split {split!r}: {source.describe()} has no mesh in it "
                        "that loads")
    world_to_cam = _camera_rotation(rng.uniform(*config.camera_pitch_deg))
    placed: list[PlacedObject] = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        category = categories[int(rng.integers(len(categories)))]
        ids = source.mesh_ids(category, split)
        mesh_id = ids[int(rng.integers(len(ids)))]
        scale = rng.uniform(*config.scale_range)
        yaw = rng.uniform(0.0, 360.0)
        tilt_x, tilt_z = np.clip(rng.normal(0.0, config.tilt_deg, 2), -2.5 * config.tilt_deg,
                                 2.5 * config.tilt_deg)
        for _ in range(attempts):
            centre = _candidate_position(rng, placed, scale, config, K)
            if centre is not None:
                break
        else:
            continue
        rotation = world_to_cam @ (rotation_x(_f64(tilt_x)) @ rotation_z(_f64(tilt_z)) @ rotation_y(_f64(yaw))).numpy()
        placed.append(PlacedObject(category, mesh_id, rotation, centre, float(scale)))
    return placed


# ----------------------------------------------------------------------------------- appearance

def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour in [0, 1] of random hue, moderate-to-high saturation and value."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.1, 0.9), rng.uniform(0.35, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background (size, size, 3) float in [0, 1]: flat, gradient, noise or clutter.
    Clutter shapes are not annotated: visible segmentation cannot rely on colour or on edges."""
    kind = rng.choice(["flat", "gradient", "noise", "clutter"], p=[0.15, 0.25, 0.25, 0.35])
    a, b = _random_colour(rng), _random_colour(rng)
    if kind == "flat":
        return np.broadcast_to(a, (size, size, 3)).copy()
    ramp = np.linspace(0.0, 1.0, size)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (np.cos(angle) * (ramp[None, :] - 0.5) + np.sin(angle) * (ramp[:, None] - 0.5)), 0, 1)
    image = a * (1 - t[..., None]) + b * t[..., None]
    if kind == "noise":
        cells = int(rng.integers(4, 33))
        noise = Image.fromarray((rng.uniform(0, 255, (cells, cells, 3))).astype(np.uint8))
        noise = np.asarray(noise.resize((size, size), Image.BICUBIC), dtype=np.float64) / 255.0
        image = (1 - 0.6) * image + 0.6 * noise
    elif kind == "clutter":
        canvas = Image.fromarray((image * 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(3, 12))):
            colour = tuple(int(v) for v in _random_colour(rng) * 255)
            x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
            w, h = rng.uniform(0.05, 0.5, 2) * size
            shape = rng.integers(3)
            if shape == 0:
                draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
            elif shape == 1:
                points = [tuple(p) for p in (rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * [w, h]
                                             + [x0, y0])]
                draw.polygon(points, fill=colour)
            else:
                draw.line([x0, y0, x0 + w, y0 + h], fill=colour, width=int(rng.integers(1, 6)))
        image = np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))), np.float64) / 255
    return image


def shade(result: RayCastResult, meshes: list[trimesh.Trimesh], rng: np.random.Generator,
          config: SceneConfig) -> np.ndarray:
    """RGB uint8 (H, W, 3): Lambertian shading under a random light over a random background."""
    size = result.depth.shape[0]
    image = background(rng, size)
    # Unit vector towards the light, camera frame: mostly from the camera's side and from above.
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.2), -rng.uniform(0.3, 1.0)])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.2, 0.45)
    hit = result.instance >= 0
    albedo = np.zeros((size, size, 3))
    for k, mesh in enumerate(meshes):
        parts = np.asarray(mesh.metadata.get("part_ids", np.zeros(len(mesh.faces), np.int32)))
        n_parts = int(parts.max()) + 1 if len(parts) else 1
        if rng.uniform() < config.part_colour_prob:
            palette = np.stack([_random_colour(rng) for _ in range(n_parts)])
        else:
            palette = np.broadcast_to(_random_colour(rng), (n_parts, 3))
        on = result.instance == k
        albedo[on] = palette[parts[result.face[on]]]
    lambert = np.clip(result.normal @ light, 0.0, 1.0)
    image[hit] = albedo[hit] * (ambient + (1.0 - ambient) * lambert[hit, None])
    image += rng.normal(0.0, rng.uniform(0.0, 0.02), image.shape)
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------- one image

@dataclass(frozen=True)
class RenderedScene:
    image: np.ndarray            # (H, W, 3) uint8
    annotations: list[dict]      # schema of docs/schema.md, without ``id`` / ``image_id``
    camera: dict                 # {"K": 3x3 list}
    meshes: dict[str, trimesh.Trimesh]


def _load_placed(source: MeshSource, placed: list[PlacedObject]) -> tuple[list, list]:
    kept, meshes = [], []
    for obj in placed:
        try:
            meshes.append(source.load(obj.mesh_id))
            kept.append(obj)
        except MeshError:
            continue  # a broken file was reported when it was loaded; the scene goes on without it
    return kept, meshes


def _cast_kept(placed: list[PlacedObject], meshes: list[trimesh.Trimesh], K: np.ndarray,
               config: SceneConfig) -> tuple | None:
    """Ray cast the objects, removing those less than ``min_visible_fraction`` visible and casting
    again until every one is kept: (placed, meshes, camera-frame meshes, cast, visible masks (N, H, W)),
    or None when none is left."""
    while placed:
        cam_meshes = [trimesh.Trimesh(p.vertices_cam(m), m.faces, process=False)
                      for p, m in zip(placed, meshes)]
        result = raycast_scene(cam_meshes, K, config.size, config.size)
        visible = result.instance[None] == np.arange(len(placed))[:, None, None]
        amodal_area = result.amodal.sum(axis=(1, 2))
        fraction = visible.sum(axis=(1, 2)) / np.maximum(amodal_area, 1)
        keep = (fraction >= config.min_visible_fraction) & (amodal_area > 0)
        if keep.all():
            return placed, meshes, cam_meshes, result, visible
        placed = [p for p, k in zip(placed, keep) if k]
        meshes = [m for m, k in zip(meshes, keep) if k]
    return None


def render_scene(rng: np.random.Generator, source: MeshSource, split: str,
                 config: SceneConfig) -> RenderedScene:
    """Sample, ray cast and shade one scene. Instances less than ``min_visible_fraction`` visible are
    removed from the 3D scene and it is cast again, so that the union of the visible masks equals
    the union of the amodal masks exactly. A scene that loses every object (broken meshes, nothing
    visible enough) is drawn again from the same stream, up to :data:`SCENE_DRAWS` times; then
    :class:`MeshError` names the split."""
    K = intrinsics(focal_from_fov(config.fov_deg, config.size), config.size, config.size).numpy()
    for _ in range(SCENE_DRAWS):
        cast = _cast_kept(*_load_placed(source, sample_placements(rng, source, split, config, K)), K, config)
        if cast is not None:
            break
    else:
        raise MeshError(f"no mesh could be placed for split {split!r}: {SCENE_DRAWS} draws of a scene left no "
                        f"object visible ({source.describe()})")
    placed, meshes, cam_meshes, result, visible = cast
    image = shade(result, meshes, rng, config)

    order = np.argsort([p.translation[2] for p in placed], kind="stable")
    depth_order = np.empty(len(placed), int)
    depth_order[order] = np.arange(1, len(placed) + 1)
    annotations = []
    for k, obj in enumerate(placed):
        amodal, vis = result.amodal[k], visible[k]
        hidden = amodal & ~vis
        occluders = [j for j in range(len(placed)) if j != k and (visible[j] & hidden).any()]
        occluder = visible[occluders].any(axis=0) if occluders else np.zeros_like(vis)
        _, truncated = projected_bounds(cam_meshes[k].vertices, K, config.size, config.size)
        amodal_box = mask_to_bbox(amodal)
        area = int(amodal.sum())
        annotations.append({
            "category_id": CATEGORY_ID[obj.category],
            "iscrowd": 0,
            "segmentation": encode_rle(amodal),
            "amodal_segm": encode_rle(amodal),
            "visible_segm": encode_rle(vis),
            "occluder_segm": encode_rle(occluder),
            "bbox": amodal_box,
            "amodal_bbox": amodal_box,
            "visible_bbox": mask_to_bbox(vis),
            "area": area,
            "visible_area": int(vis.sum()),
            "occlude_rate": round(1.0 - float(vis.sum()) / area, 6),
            "truncated": truncated,
            "depth_order": int(depth_order[k]),
            "viewpoint": obj.viewpoint(),
            "mesh_id": obj.mesh_id,
            "pose": {"rotation": np.round(obj.rotation, 8).tolist(),
                     "translation": np.round(obj.translation, 8).tolist(),
                     "scale": round(obj.scale, 8)},
        })
    return RenderedScene(image, annotations, {"K": K.tolist()},
                         {p.mesh_id: m for p, m in zip(placed, meshes)})
