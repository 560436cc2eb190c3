"""How good is the rendered 3D prior (steps 2-4) on unseen meshes?

    python benchmarks/eval_shape_prior.py --weights RUN/model.safetensors --data DATA [--split test]

Given the ground-truth visible masks (the prior's input), on the test split of a generated dataset:
IoU of the rendered prior with the amodal mask, next to the visible mask taken as amodal, on
occluded instances (occlude_rate >= 0.25); the prior's IoU on the hidden region; viewpoint error
(ground truth only measures; ``azimuth_flip_*`` also counts the front/back twin ``180 - azimuth`` of the
true azimuth as right: from (a, e) and (180 - a, -e) a mirror-symmetric object has one silhouette, so at
low elevations silhouettes hardly tell the two apart, and the prior hardly changes between them).
Each figure twice, side by side: the network's prior as predicted and after ``--fit-steps`` of
render-and-compare fitting of its camera to the visible mask (``fitted_*``).
Writes benchmarks/results/shape_prior.json and a figure.

``--oracle`` (generated data only: it needs each instance's ``mesh_id``, ``pose`` and the image's
``camera.K``) adds oracle rows, each rendered and pasted exactly as the prior (soft silhouette, the
model's ``sigma``, > 0.5) and scored as ``prior_*`` (``oracle_<row>_iou_all``, ``_iou_occluded``,
``_occluded_region_iou``), to split the prior's gap into shape and viewpoint:
``gt_mesh_gt_pose`` the data engine's mesh projected with its pose and ``K`` into the instance's ROI
(exact, no fitting: the ROI machinery's ceiling; ``_hard_iou_all`` with the hard rasteriser,
``_image_iou_all`` hard at image resolution without the ROI: 1 unless the mesh or pose is wrong);
``pred_mesh_gt_view`` the predicted mesh, turned by its category's azimuth offset into the ground-truth
frame and normalised as the ground-truth meshes are (bounding box centred, unit diagonal), at the
ground-truth pose; ``gt_mesh_pred_view`` the ground-truth mesh put in the predicted mesh's place (the
inverse map: turned back, scaled to its bounding-box diagonal, centred on its box centre) under the
predicted camera; ``gt_mesh_fitted_view`` the same after ``--fit-steps`` of render-and-compare of that
camera to the visible mask; ``pred_mesh_gt_angles`` and ``gt_mesh_gt_angles`` the predicted and the
(so mapped) ground-truth mesh under the model's ROI camera at the ground-truth viewpoint, with
the ROI offset and zoom that best fit the ground-truth mesh's projection (``_fitted``: fitted to the
visible mask instead, angles held): one camera for both meshes, the shape's share of the gap.
``roi_amodal_coverage_*``: the share of the amodal mask inside the ROI; ``prior_image_res_*``: the
prior as predicted (mesh and camera) rasterised hard at image resolution instead of in the ROI and pasted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from amodal3d import CATEGORY_NAMES
from amodal3d.data.dataset import AmodalDataset
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.geometry import rotation_y, view_transform
from amodal3d.io import atomic_write_json
from amodal3d.models.shape import ShapeOutput, ShapePrior, fit_to_visible, image_priors, load_shape_prior
from amodal3d.models.shape_train import mesh_of
from amodal3d.models.viewpoint import Cameras, angular_error
from amodal3d.render import project_full, render_hard_silhouette, render_soft_silhouette
from amodal3d.roi import paste, roi_inputs

RESULTS = Path(__file__).resolve().parent / "results"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def flip_azimuth(azimuth: np.ndarray) -> np.ndarray:
    """The front/back twin ``180 - azimuth`` of each azimuth (degrees): an object mirror-symmetric about
    its x = 0 plane has the same silhouette from (a, e) and from (180 - a, -e) under an orthographic
    camera (nearly so under a perspective one), so at low elevations silhouettes hardly tell a from
    its twin."""
    return 180.0 - azimuth


def azimuth_errors(predicted: np.ndarray, true: np.ndarray, flip: bool = False) -> np.ndarray:
    """Absolute azimuth errors in degrees; ``flip``: the smaller of the errors to ``true`` and to its
    front/back twin (:func:`flip_azimuth`)."""
    err = angular_error(torch.tensor(predicted), torch.tensor(true)).numpy()
    if flip:
        err = np.minimum(err, angular_error(torch.tensor(predicted), torch.tensor(flip_azimuth(true))).numpy())
    return err


def best_offset(predicted: np.ndarray, true: np.ndarray, flip: bool = False) -> tuple[int, np.ndarray]:
    """The single global offset (0..359 deg) that minimises the median azimuth error, and the errors
    after it: an unsupervised model's canonical frame may be rotated about the vertical axis
    (``true ~ predicted + offset``); ``flip`` counts errors as :func:`azimuth_errors` does."""
    offsets = np.arange(360)
    errors = azimuth_errors(predicted[None, :] + offsets[:, None], true[None, :], flip)   # (360, N)
    best_at = int(np.argmin(np.median(errors, axis=1)))  # the first of equal medians, as a scan would
    return best_at, errors[best_at]


def best_offset_error(predicted: np.ndarray, true: np.ndarray, flip: bool = False) -> np.ndarray:
    """Azimuth errors after :func:`best_offset`."""
    return best_offset(predicted, true, flip)[1]


def azimuth_references(true: np.ndarray, groups: list[np.ndarray], seed: int = 0) -> dict:
    """Reference levels of the azimuth figures for the true azimuths ``true`` (N,) in degrees, scored per
    group (index arrays, one per category) after the best offset as the model is: ``chance`` uniformly
    random predictions (plain and ``flip`` errors); ``coin_flip`` a model right up to the front/back
    twin, which it picks by a coin toss (plain errors): what a model blind to the twin scores by luck."""
    rng = np.random.default_rng(seed)
    errors = {"chance": [], "flip_chance": [], "coin_flip": []}
    for idx in groups:
        t = true[idx]
        guess = rng.uniform(-180.0, 180.0, len(t))
        errors["chance"].append(best_offset_error(guess, t))
        errors["flip_chance"].append(best_offset_error(guess, t, flip=True))
        errors["coin_flip"].append(best_offset_error(np.where(rng.uniform(size=len(t)) < 0.5, t, flip_azimuth(t)), t))
    return {f"azimuth_{name}_acc30": round(float(np.mean(np.concatenate(e) <= 30)), 4) for name, e in errors.items()}


# --------------------------------------------------------------------------- oracle rows (--oracle)

ORACLE_ROWS = ("gt_mesh_gt_pose", "pred_mesh_gt_view", "gt_mesh_pred_view", "gt_mesh_fitted_view",
               "pred_mesh_gt_angles", "gt_mesh_gt_angles", "pred_mesh_gt_angles_fitted", "gt_mesh_gt_angles_fitted")
ORACLE_NOTE = (
    "oracle rows, rendered, pasted and scored as the prior (soft silhouette at the model's sigma, > 0.5): "
    "gt_mesh_gt_pose = the data engine's mesh projected with the instance's pose and the image's K into its "
    "ROI (exact placement, no fitting; _hard_ = hard rasteriser; _image_ = hard, at image resolution, no ROI: "
    "a check of the meshes and poses, 1 up to ties); pred_mesh_gt_view = the predicted mesh "
    "turned by its category's azimuth offset (oracle_offsets_deg, the one of azimuth_acc30) into the "
    "ground-truth frame, normalised like the ground-truth meshes (bounding box centred at the origin, "
    "unit diagonal) and placed with the ground-truth pose and K (exact, no fitting); gt_mesh_pred_view = "
    "the ground-truth mesh mapped into the predicted mesh's frame by the inverse map (scaled to the "
    "predicted mesh's bounding-box diagonal, centred on its box centre, turned back by the offset) under "
    "the predicted camera (azimuth, elevation, distance, ROI offset and scale as predicted); "
    "gt_mesh_fitted_view = the same camera after fit_steps of render-and-compare to the visible mask "
    "(azimuth, elevation, ROI offset, zoom; hidden pixels free); pred_mesh_gt_angles / gt_mesh_gt_angles = "
    "the predicted mesh / the ground-truth mesh (mapped as in gt_mesh_pred_view) under the model's ROI camera "
    "at the ground-truth azimuth (minus the offset), elevation and distance (times the predicted mesh's "
    "bounding-box diagonal, the unit of its frame), both with the "
    "ROI offset and zoom that fit the ground-truth mesh's exact projection best (least squares over its "
    "vertices; the ROI camera has no roll, so this is not exact); _fitted = ROI offset and zoom fitted "
    "instead to the visible mask for fit_steps from the predicted ones (the zoom times the ratio of the "
    "distances, so that the apparent size starts as predicted; angles and distance held); "
    "roi_amodal_coverage = share of the amodal mask inside the ROI; prior_image_res = the "
    "prior as predicted (mesh and camera), its ROI camera written as an image camera and rasterised hard at "
    "image resolution instead of in the ROI")


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One generated instance: its mesh (object frame, bounding box centred, unit diagonal) and the
    image projection ``uv ~ K (scale R X + t)`` of docs/schema.md."""

    verts: torch.Tensor        # (V, 3) float32
    faces: torch.Tensor        # (F, 3) int64
    rotation: torch.Tensor     # (3, 3) float64, object to camera
    translation: torch.Tensor  # (3,) float64, camera frame
    scale: float
    K: torch.Tensor            # (3, 3) float64, image pixels


def ground_truth_meshes(root: str | Path) -> Callable[[str], tuple[torch.Tensor, torch.Tensor]]:
    """``mesh_id -> (verts (V, 3) float32, faces (F, 3) int64)`` of a generated dataset: the OBJ that
    ``generate --save-meshes`` wrote, else the mesh rebuilt by the data engine's mesh source with the
    arguments of ``DATA/generation.json`` (procedural meshes are seeded by seed, category, split, index)."""
    from amodal3d.data.generate import RECORD, read_record
    from amodal3d.data.meshes import load_mesh_file, open_mesh_source
    from amodal3d.paths import lies_inside

    root = Path(root)
    if not (root / RECORD).is_file():
        raise DataError(f"{root / RECORD}: missing: --oracle needs a dataset made by amodal3d generate")
    record = read_record(root / RECORD)
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    source = []

    def load(mesh_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        if mesh_id not in cache:
            saved = root / "meshes" / f"{mesh_id}.obj"
            if lies_inside(saved, root / "meshes") and saved.is_file():
                mesh = load_mesh_file(saved)
            else:
                if not source:
                    source.append(open_mesh_source(record.get("shapes", "procedural"), seed=record.get("seed", 0),
                                                   only_split=record.get("shapes_split")))
                mesh = source[0].load(mesh_id)
            cache[mesh_id] = (torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32),
                              torch.tensor(np.asarray(mesh.faces), dtype=torch.int64))
        return cache[mesh_id]

    return load


def ground_truths(dataset: AmodalDataset, index: int, meshes: Callable) -> list[GroundTruth]:
    """The :class:`GroundTruth` of every annotation of image ``index``, in the order of its target."""
    info = dataset.images[index]
    K = info.get("camera", {}).get("K")
    truths = []
    for ann in dataset.by_image.get(info["id"], []):
        if K is None or "pose" not in ann or "mesh_id" not in ann:
            raise DataError(f"{dataset.annotation_file}: image {info['id']}: no camera.K, pose or mesh_id: "
                            "--oracle needs generated data")
        verts, faces = meshes(ann["mesh_id"])
        pose = ann["pose"]
        truths.append(GroundTruth(verts, faces, torch.tensor(pose["rotation"], dtype=torch.float64),
                                  torch.tensor(pose["translation"], dtype=torch.float64), float(pose["scale"]),
                                  torch.tensor(K, dtype=torch.float64)))
    return truths


def rotate_y(verts: torch.Tensor, degrees: float) -> torch.Tensor:
    """(V, 3) turned by ``degrees`` about +Y (geometry.rotation_y: +Z towards +X)."""
    return verts @ rotation_y(torch.tensor(float(degrees), dtype=verts.dtype)).T


def bounding_box(verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (3,) and diagonal () of the axis-aligned bounding box of (V, 3) vertices."""
    low, high = verts.min(dim=0).values, verts.max(dim=0).values
    return (low + high) / 2.0, (high - low).norm()


def image_to_roi(uv: torch.Tensor, roi: torch.Tensor, size: int) -> torch.Tensor:
    """Image pixel coordinates (..., 2) -> ROI raster coordinates of the square ``roi`` (4,) xyxy mapped
    onto ``[0, size)^2`` (:mod:`amodal3d.roi`)."""
    return (uv - roi[:2].to(uv)) * (size / (roi[2:] - roi[:2]).to(uv))


def _silhouette(uv: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, size: int, sigma: float,
                hard: bool = False) -> torch.Tensor:
    """One mesh's silhouette (S, S) from ROI ``uv`` (V, 2) and ``depth`` (V,)."""
    uv, depth = uv[None].float(), depth[None].float()
    if hard:
        return render_hard_silhouette(uv, depth, faces, (size, size))[0]
    return render_soft_silhouette(uv, faces, (size, size), sigma=sigma, depth=depth)[0]


def project_pose(verts: torch.Tensor, truth: GroundTruth) -> tuple[torch.Tensor, torch.Tensor]:
    """(V, 3) object-frame vertices placed with ``truth``'s pose and ``K``: image pixels (1, V, 2) and
    depth (1, V), float64."""
    return project_full(verts[None].double(), (truth.scale * truth.rotation)[None], truth.translation[None],
                        truth.K)


def pose_silhouette(verts: torch.Tensor, faces: torch.Tensor, truth: GroundTruth, roi: torch.Tensor,
                    size: int, sigma: float, hard: bool = False) -> torch.Tensor:
    """(V, 3) object-frame vertices placed with ``truth``'s pose and ``K``, rendered into the ROI
    ``roi`` (4,) of side ``size``: (S, S)."""
    uv, depth = project_pose(verts, truth)
    return _silhouette(image_to_roi(uv[0], roi.double(), size), depth[0], faces, size, sigma, hard)


def one_camera(cameras: Cameras, k: int) -> Cameras:
    """Instance ``k`` of (B,)-field cameras as a batch of one."""
    return dataclasses.replace(cameras, **{f.name: getattr(cameras, f.name)[k:k + 1]
                                           for f in dataclasses.fields(cameras)})


def roi_camera_in_image(model: ShapePrior, camera: Cameras, roi: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model's ROI camera (a batch of one) cut at ``roi`` (4,) xyxy as an image camera: object-to-camera
    ``rotation`` (3, 3), ``translation`` (3,) and intrinsics ``K`` (3, 3) in image pixels, float64, so that
    ``project_full`` then :func:`image_to_roi` is ``model.project`` (a pinhole of focal ``focal * scale``
    and principal point ``S/2 + offset`` in ROI pixels, the ROI mapped back onto the image)."""
    size = model.config.roi_size
    rotation, translation = view_transform(camera.azimuth[0].double(), camera.elevation[0].double(),
                                           camera.distance[0].double())
    a = float(roi[2] - roi[0]) / size
    focal = float(model.focal) * float(camera.scale[0]) * a
    (x0, y0), (ox, oy) = roi[:2].tolist(), camera.offset[0].tolist()
    K = torch.tensor([[focal, 0.0, x0 + (size / 2 + ox) * a], [0.0, focal, y0 + (size / 2 + oy) * a],
                      [0.0, 0.0, 1.0]], dtype=torch.float64)
    return rotation, translation, K


def oracle_placement(model: ShapePrior, verts: torch.Tensor, camera: Cameras, target: torch.Tensor) -> Cameras:
    """``camera`` (a batch of one) with the ROI offset and zoom that bring the projection of ``verts`` (V, 3)
    closest, in least squares, to ``target`` (V, 2) ROI pixels (its angles and distance kept): the ROI
    camera is ``uv = S/2 + offset + zoom * p`` with ``p`` the projection at offset 0, zoom 1."""
    half = model.config.roi_size / 2.0
    plain = dataclasses.replace(camera, offset=torch.zeros_like(camera.offset), scale=torch.ones_like(camera.scale))
    p = model.project(verts[None], plain)[0][0].double() - half
    q = target.double() - half
    dp, dq = p - p.mean(0), q - q.mean(0)
    zoom = (dp * dq).sum() / (dp * dp).sum().clamp_min(1e-12)
    offset = q.mean(0) - zoom * p.mean(0)
    return dataclasses.replace(camera, offset=offset[None].to(camera.offset), scale=zoom[None].to(camera.scale))


def view_silhouette(model: ShapePrior, verts: torch.Tensor, faces: torch.Tensor, camera: Cameras) -> torch.Tensor:
    """(V, 3) vertices under the model's ROI camera ``camera`` (a batch of one): soft (S, S)."""
    uv, depth = model.project(verts[None], camera)
    return _silhouette(uv[0], depth[0], faces, model.config.roi_size, model.config.sigma)


def fit_view(model: ShapePrior, verts: torch.Tensor, faces: torch.Tensor, camera: Cameras, roi: torch.Tensor,
             steps: int, angles: bool = True) -> Cameras:
    """:func:`amodal3d.models.shape.fit_to_visible` for one mesh (V, 3) with its own ``faces``: the camera
    (a batch of one) fitted to ``roi`` (1, 6, S, S), azimuth and elevation held unless ``angles``."""
    return fit_to_visible(model, verts[None].float(), camera, roi, steps, faces=faces, fit_angles=angles)[0]


def oracle_silhouettes(model: ShapePrior, output: ShapeOutput, roi: torch.Tensor, rois: torch.Tensor,
                       labels: torch.Tensor, viewpoints: torch.Tensor, truths: list[GroundTruth],
                       offsets: dict[int, float], fit_steps: int = 0) -> dict[str, torch.Tensor]:
    """The oracle rows of one image in ROI space: name -> (N, S, S) silhouettes in [0, 1].

    ``output`` is the model's (unfitted) prediction on ``roi`` (N, 6, S, S) cut at ``rois`` (N, 4);
    ``labels`` (N,) category ids; ``viewpoints`` (N, 3) ground-truth (azimuth, elevation, distance);
    ``offsets`` category id -> degrees with ``true azimuth ~ predicted + offset`` (the predicted mesh's
    frame turned by it about +Y is the ground-truth frame)."""
    size, sigma = model.config.roi_size, model.config.sigma
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in (*ORACLE_ROWS, "gt_mesh_gt_pose_hard")}
    with torch.no_grad():
        for k, truth in enumerate(truths):
            offset = float(offsets.get(int(labels[k]), 0.0))
            rows["gt_mesh_gt_pose"].append(pose_silhouette(truth.verts, truth.faces, truth, rois[k], size, sigma))
            rows["gt_mesh_gt_pose_hard"].append(
                pose_silhouette(truth.verts, truth.faces, truth, rois[k], size, sigma, hard=True))
            predicted = rotate_y(output.verts[k].double(), offset)      # ground-truth frame
            centre, diagonal = bounding_box(predicted)
            rows["pred_mesh_gt_view"].append(
                pose_silhouette((predicted - centre) / diagonal, output.faces, truth, rois[k], size, sigma))
            gt_in_model = rotate_y(truth.verts.double() * diagonal + centre, -offset).to(output.verts)
            camera = one_camera(output.cameras, k)
            rows["gt_mesh_pred_view"].append(view_silhouette(model, gt_in_model, truth.faces, camera))
            if fit_steps:
                camera = fit_view(model, gt_in_model, truth.faces, camera, roi[k:k + 1], fit_steps)
            rows["gt_mesh_fitted_view"].append(view_silhouette(model, gt_in_model, truth.faces, camera))
            # the ROI camera at the ground-truth viewpoint (azimuth in the predicted frame, distance in its
            # units), the same for both meshes: ROI offset and zoom of the least-squares fit of the ground-truth
            # mesh's projection, or fitted to the visible mask from the predicted ones (_fitted)
            true_angles = dataclasses.replace(
                one_camera(output.cameras, k),
                azimuth=(viewpoints[k:k + 1, 0] - offset).to(output.verts),
                elevation=viewpoints[k:k + 1, 1].to(output.verts),
                distance=(viewpoints[k:k + 1, 2] * diagonal).to(output.verts))
            uv, _ = project_pose(truth.verts, truth)
            placed = oracle_placement(model, gt_in_model, true_angles, image_to_roi(uv[0], rois[k].double(), size))
            # the fit starts at the predicted ROI offset and apparent size (zoom scaled with the distance)
            start = dataclasses.replace(true_angles, scale=true_angles.scale * true_angles.distance
                                        / output.cameras.distance[k:k + 1])
            for name, verts, faces in (("pred_mesh_gt_angles", output.verts[k], output.faces),
                                       ("gt_mesh_gt_angles", gt_in_model, truth.faces)):
                rows[name].append(view_silhouette(model, verts, faces, placed))
                camera = start
                if fit_steps:
                    camera = fit_view(model, verts, faces, camera, roi[k:k + 1], fit_steps, angles=False)
                rows[f"{name}_fitted"].append(view_silhouette(model, verts, faces, camera))
    return {name: torch.stack(maps) for name, maps in rows.items()}


def oracle_image(model: ShapePrior, image: torch.Tensor, target: dict, truths: list[GroundTruth],
                 offsets: dict[int, float], fit_steps: int = 0) -> list[dict]:
    """Per-instance oracle figures of one image (empty list when it has no instance): for each row of
    :func:`oracle_silhouettes`, ``oracle_<row>_iou`` with the amodal mask and ``oracle_<row>_hidden_iou``
    on the hidden region, as ``prior_iou`` / ``prior_hidden_iou``; and ``roi_amodal_coverage``."""
    visible = target["visible_masks"].bool()
    h, w = image.shape[1:]
    if visible.shape[0] == 0:
        return []
    with torch.no_grad():
        roi, rois = roi_inputs(image, visible, model.config.roi_size, model.config.roi_enlarge)
        output, _ = model({"roi": roi, "labels": target["labels"]})
    maps = oracle_silhouettes(model, output, roi, rois, target["labels"], target["viewpoint"], truths, offsets,
                              fit_steps)
    pasted = {name: (paste(m, rois, h, w).clamp(0, 1) > 0.5).numpy() for name, m in maps.items()}
    centres_x, centres_y = np.arange(w) + 0.5, np.arange(h) + 0.5
    rows = []
    for k in range(visible.shape[0]):
        vis = visible[k].numpy()
        amodal = target["amodal_masks"][k].bool().numpy()
        hidden_gt = amodal & ~vis
        x0, y0, x1, y1 = rois[k].tolist()
        in_roi = ((centres_y >= y0) & (centres_y < y1))[:, None] & ((centres_x >= x0) & (centres_x < x1))[None]
        uv, depth = project_pose(truths[k].verts, truths[k])
        full = render_hard_silhouette(uv.float(), depth.float(), truths[k].faces, (h, w))[0].bool().numpy()
        rotation, translation, K = roi_camera_in_image(model, one_camera(output.cameras, k), rois[k])
        uv, depth = project_full(output.verts[k:k + 1].double(), rotation[None], translation[None], K)
        prior = render_hard_silhouette(uv.float(), depth.float(), output.faces, (h, w))[0].bool().numpy()
        row = {"roi_amodal_coverage": float((amodal & in_roi).sum() / max(amodal.sum(), 1)),
               "oracle_gt_mesh_gt_pose_image_iou": iou(full, amodal),
               "prior_image_res_iou": iou(prior, amodal), "prior_image_res_hidden_iou": iou(prior & ~vis, hidden_gt)}
        for name, masks in pasted.items():
            row[f"oracle_{name}_iou"] = iou(masks[k], amodal)
            row[f"oracle_{name}_hidden_iou"] = iou(masks[k] & ~vis, hidden_gt)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--fit-steps", type=int, default=10, help="render-and-compare steps (fitted_* figures)")
    parser.add_argument("--out", default=str(RESULTS / "shape_prior.json"))
    parser.add_argument("--figure", default=str(RESULTS / "shape_prior.png"))
    parser.add_argument("--oracle", action="store_true",
                        help="add the oracle rows (generated data: ground-truth meshes and poses; see above)")
    args = parser.parse_args(argv)
    try:
        run(args)
    except Amodal3dError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")


def run(args: argparse.Namespace) -> None:
    model = load_shape_prior(args.weights)
    dataset = AmodalDataset(args.data, args.split)
    meshes = ground_truth_meshes(args.data) if args.oracle else None
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    rows = []
    examples = []
    start = time.perf_counter()
    for index in tqdm(range(count), desc="shape prior", unit="img"):
        image, target = dataset[index]
        visible = target["visible_masks"].bool()
        priors, output = image_priors(model, image, visible, target["labels"])
        if output is None:
            continue
        fitted_priors, fitted = image_priors(model, image, visible, target["labels"], args.fit_steps)
        for k in range(visible.shape[0]):
            vis = visible[k].numpy()
            amodal = target["amodal_masks"][k].bool().numpy()
            prior = priors[k].numpy() > 0.5
            fitted_prior = fitted_priors[k].numpy() > 0.5
            hidden_gt = amodal & ~vis
            rows.append({
                "fitted_prior_iou": iou(fitted_prior, amodal),
                "fitted_prior_or_visible_iou": iou(fitted_prior | vis, amodal),
                "fitted_prior_hidden_iou": iou(fitted_prior & ~vis, hidden_gt),
                "azimuth_fitted": float(fitted.cameras.azimuth[k]),
                "category": CATEGORY_NAMES[int(target["labels"][k]) - 1],
                "occlude_rate": float(target["occlude_rate"][k]),
                "prior_iou": iou(prior, amodal),
                "prior_or_visible_iou": iou(prior | vis, amodal),
                "visible_iou": iou(vis, amodal),
                "prior_hidden_iou": iou(prior & ~vis, hidden_gt),
                "azimuth_pred": float(output.cameras.azimuth[k]),
                "azimuth_true": float(target["viewpoint"][k, 0]),
            })
            if len(examples) < 6 and rows[-1]["occlude_rate"] >= 0.25:
                examples.append((image, vis, amodal, priors[k].numpy(), fitted_priors[k].numpy(),
                                 mesh_of(output, k), rows[-1]["azimuth_pred"], float(output.cameras.elevation[k])))
    seconds = time.perf_counter() - start

    def summary(items: list[dict]) -> dict:
        occluded = [r for r in items if r["occlude_rate"] >= 0.25]
        hidden = [r for r in items if r["occlude_rate"] >= 0.05]
        mean = lambda rs, key: round(float(np.mean([r[key] for r in rs])), 4) if rs else None  # noqa: E731
        return {"count": len(items), "occluded_count": len(occluded),
                "prior_iou_occluded": mean(occluded, "prior_iou"),
                "prior_or_visible_iou_occluded": mean(occluded, "prior_or_visible_iou"),
                "visible_iou_occluded": mean(occluded, "visible_iou"),
                "prior_occluded_region_iou": mean(hidden, "prior_hidden_iou"),
                "prior_iou_all": mean(items, "prior_iou"), "visible_iou_all": mean(items, "visible_iou"),
                "fitted_prior_iou_occluded": mean(occluded, "fitted_prior_iou"),
                "fitted_prior_or_visible_iou_occluded": mean(occluded, "fitted_prior_or_visible_iou"),
                "fitted_prior_occluded_region_iou": mean(hidden, "fitted_prior_hidden_iou"),
                "fitted_prior_iou_all": mean(items, "fitted_prior_iou"),
                **oracle_summary(items, occluded, hidden, mean)}

    by_category = defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
    true = np.array([r["azimuth_true"] for r in rows])
    category_index = {name: np.array([i for i, r in enumerate(rows) if r["category"] == name]) for name in by_category}

    def aligned_errors(key: str, flip: bool = False) -> np.ndarray:
        pred = np.array([r[key] for r in rows])
        errors = np.zeros_like(pred)
        for idx in category_index.values():
            errors[idx] = best_offset_error(pred[idx], true[idx], flip)
        return errors

    oracle_extra = {}
    if args.oracle:
        offsets = {CATEGORY_NAMES.index(name) + 1: best_offset(
            np.array([rows[i]["azimuth_pred"] for i in idx]), true[idx])[0] for name, idx in category_index.items()}
        oracle_start = time.perf_counter()
        oracle = []
        for index in tqdm(range(count), desc="oracle rows", unit="img"):
            image, target = dataset[index]
            oracle += oracle_image(model, image, target, ground_truths(dataset, index, meshes), offsets,
                                   args.fit_steps)
        if len(oracle) != len(rows):
            raise RuntimeError(f"oracle rows: {len(oracle)} instances, the prior's {len(rows)}")
        for row, extra in zip(rows, oracle):
            row.update(extra)
        oracle_extra = {"oracle_note": ORACLE_NOTE,
                        "oracle_offsets_deg": {CATEGORY_NAMES[c - 1]: v for c, v in sorted(offsets.items())},
                        "oracle_seconds": round(time.perf_counter() - oracle_start, 1)}

    raw = angular_error(torch.tensor([r["azimuth_pred"] for r in rows]), torch.tensor(true)).numpy()
    aligned, fitted_aligned = aligned_errors("azimuth_pred"), aligned_errors("azimuth_fitted")
    flip_aligned = aligned_errors("azimuth_pred", flip=True)
    per_category = {name: {**summary(items),
                           "azimuth_median_error_deg": round(float(np.median(aligned[category_index[name]])), 2),
                           "azimuth_acc30": round(float(np.mean(aligned[category_index[name]] <= 30)), 4),
                           "azimuth_flip_acc30": round(float(np.mean(flip_aligned[category_index[name]] <= 30)), 4)}
                    for name, items in by_category.items()}
    result = {
        **summary(rows),
        "azimuth_median_error_deg": round(float(np.median(aligned)), 2),
        "azimuth_acc30": round(float(np.mean(aligned <= 30)), 4),
        "azimuth_flip_median_error_deg": round(float(np.median(flip_aligned)), 2),
        "azimuth_flip_acc30": round(float(np.mean(flip_aligned <= 30)), 4),
        "fitted_azimuth_median_error_deg": round(float(np.median(fitted_aligned)), 2),
        "fitted_azimuth_acc30": round(float(np.mean(fitted_aligned <= 30)), 4),
        "fit_steps": args.fit_steps,
        "azimuth_raw_median_error_deg": round(float(np.median(raw)), 2),
        "azimuth_raw_acc30": round(float(np.mean(raw <= 30)), 4),
        **azimuth_references(true, list(category_index.values())),
        "azimuth_note": "azimuth errors after one best rotation offset per category (the unsupervised "
                        "canonical frame is free to rotate about the vertical axis); raw = without it; "
                        "flip = the smaller of the errors to the true azimuth and to its front/back twin "
                        "180 - azimuth, which has the same silhouette for a mirror-symmetric object (with the "
                        "elevation's sign flipped); references: chance = uniformly random predictions, "
                        "coin_flip = right up to the twin, picked by a coin toss (plain errors)",
        "per_category": dict(sorted(per_category.items(), key=lambda kv: CATEGORY_NAMES.index(kv[0]))),
        "protocol": "ground-truth visible masks as input; prior = rendered silhouette > 0.5 pasted into the image",
        "weights": str(args.weights), "data": str(args.data), "split": args.split, "images": count,
        "instances_per_s": round(len(rows) / seconds, 2),
        **oracle_extra,
    }
    atomic_write_json(args.out, result, indent=2)
    if examples:
        figure(examples, args.figure)
    print(json.dumps({k: v for k, v in result.items() if k != "per_category"}, indent=2))


def oracle_summary(items: list[dict], occluded: list[dict], hidden: list[dict], mean: Callable) -> dict:
    """Mean oracle figures (empty without ``--oracle``): ``oracle_<row>_iou_all``, ``_iou_occluded`` and
    ``_occluded_region_iou`` over the instance sets of ``prior_iou_all``, ``prior_iou_occluded`` and
    ``prior_occluded_region_iou``."""
    if not items or "roi_amodal_coverage" not in items[0]:
        return {}
    out = {}
    for name in ORACLE_ROWS:
        key = f"oracle_{name}"
        out[f"{key}_iou_all"] = mean(items, f"{key}_iou")
        out[f"{key}_iou_occluded"] = mean(occluded, f"{key}_iou")
        out[f"{key}_occluded_region_iou"] = mean(hidden, f"{key}_hidden_iou")
    out["oracle_gt_mesh_gt_pose_hard_iou_all"] = mean(items, "oracle_gt_mesh_gt_pose_hard_iou")
    out["oracle_gt_mesh_gt_pose_image_iou_all"] = mean(items, "oracle_gt_mesh_gt_pose_image_iou")
    out["prior_image_res_iou_all"] = mean(items, "prior_image_res_iou")
    out["prior_image_res_iou_occluded"] = mean(occluded, "prior_image_res_iou")
    out["prior_image_res_occluded_region_iou"] = mean(hidden, "prior_image_res_hidden_iou")
    out["roi_amodal_coverage_all"] = mean(items, "roi_amodal_coverage")
    out["roi_amodal_coverage_occluded"] = mean(occluded, "roi_amodal_coverage")
    return out


def figure(examples: list, out: str) -> None:
    """Input, visible mask, mesh from two views, rendered prior before and after the fit, ground truth
    (one row per instance)."""
    from PIL import Image

    from amodal3d.data.preview import shaded_view
    from amodal3d.visualize import grid

    def tile(array: np.ndarray) -> Image.Image:
        return Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).convert("RGB").resize((128, 128))

    tiles, captions = [], []
    for image, vis, amodal, prior, fitted, mesh, az, el in examples:
        tiles += [tile(image.permute(1, 2, 0).numpy()), tile(vis.astype(float)),
                  Image.fromarray(shaded_view(mesh, azimuth=az, elevation=el, size=128)),
                  Image.fromarray(shaded_view(mesh, azimuth=az + 90, elevation=20, size=128)),
                  tile(prior), tile(fitted), tile(amodal.astype(float))]
        captions += ["input", "visible (input)", "mesh, predicted view", "mesh, +90 deg", "rendered prior",
                     "prior after the fit", "ground-truth amodal"]
    grid(tiles, 7, out, captions)


if __name__ == "__main__":
    main()
