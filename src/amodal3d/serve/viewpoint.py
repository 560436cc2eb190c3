"""The editable viewpoint: turn one instance's azimuth and elevation and re-render its prior (the
project's silhouette renderer on the instance's mesh, in its ROI camera) and its amodal mask (step 5
on the new prior, pasted back, hidden parts only under other instances' visible masks), with the
render-and-compare IoU of the prior against the visible mask as a self-check.

The page keeps a :class:`ViewState` per image (numpy only). It is built by running the shape stage
again on the image's visible masks (:func:`prepare`): the pipeline's output keeps the camera's
azimuth, elevation and distance but not its ROI offset and zoom, which placing the render needs.
The re-rendered amodal mask leaves out step 1's amodal head (which the end-to-end mask is weighed
against), so at the predicted viewpoint it may differ a little from the table's mask."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from amodal3d.models.shape import with_fit
from amodal3d.models.viewpoint import Cameras
from amodal3d.roi import image_tensor, other_instances, paste, roi_inputs
from amodal3d.visualize import overlay

ELEVATION_LIMIT = 85.0  # the viewpoint camera is undefined at the poles


@dataclass
class ViewState:
    """Everything a re-render needs for the N instances of one image (numpy, picklable)."""

    image: np.ndarray        # (H, W, 3) uint8
    visible: np.ndarray      # (N, H, W) bool
    labels: np.ndarray       # (N,) int64
    verts: np.ndarray        # (N, V, 3) float32, object frame
    faces: np.ndarray        # (F, 3) int64
    azimuth: np.ndarray      # (N,) degrees, as predicted
    elevation: np.ndarray    # (N,)
    distance: np.ndarray     # (N,)
    offset: np.ndarray       # (N, 2) ROI pixels
    scale: np.ndarray        # (N,)
    roi: np.ndarray          # (N, 6, S, S) shape-stage input (for step 5)
    rois: np.ndarray         # (N, 4) xyxy image pixels


@dataclass
class Render:
    prior: np.ndarray        # (H, W) bool: the rendered prior, in the image
    amodal: np.ndarray       # (H, W) bool: the amodal mask from that prior
    iou: float               # render-and-compare IoU of the prior against the visible mask
    seconds: float


@torch.no_grad()
def prepare(segmenter, image: np.ndarray, visible: np.ndarray, labels: np.ndarray) -> ViewState:
    """Steps 2-4 of ``segmenter`` on the given visible masks: meshes and full cameras per instance."""
    device = segmenter.device
    tensor = image_tensor(image, device)
    vis = torch.from_numpy(np.asarray(visible, bool)).to(device)
    cfg = segmenter.shape.config
    roi, rois = roi_inputs(tensor, vis, cfg.roi_size, cfg.roi_enlarge)
    out, _ = segmenter.shape({"roi": roi, "labels": torch.as_tensor(np.asarray(labels), dtype=torch.long,
                                                                     device=device)})
    out = with_fit(segmenter.shape, out, roi, segmenter.fit_steps)
    cams = out.cameras
    numpy = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return ViewState(np.asarray(image), np.asarray(visible, bool), np.asarray(labels), numpy(out.verts),
                     numpy(out.faces), numpy(cams.azimuth), numpy(cams.elevation), numpy(cams.distance),
                     numpy(cams.offset), numpy(cams.scale), numpy(roi), numpy(rois))


@torch.no_grad()
def rerender(segmenter, state: ViewState, k: int, azimuth: float, elevation: float) -> Render:
    """Instance ``k`` seen from (``azimuth``, ``elevation``) degrees (distance, ROI offset and zoom as
    predicted): its prior and amodal mask in the image, and the prior's IoU with the visible mask where
    no other instance's visible mask hides it."""
    start = time.perf_counter()
    if not 0 <= k < len(state.labels):
        raise ValueError(f"instance {k} out of range (0..{len(state.labels) - 1})")
    device = segmenter.device
    elevation = float(np.clip(elevation, -ELEVATION_LIMIT, ELEVATION_LIMIT))
    tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    cameras = Cameras(tensor([azimuth]), tensor([elevation]), tensor(state.distance[k:k + 1]),
                      tensor(state.offset[k:k + 1]), tensor(state.scale[k:k + 1]))
    verts = tensor(state.verts[k:k + 1])
    prior_roi = segmenter.shape.render(verts, cameras)
    roi = tensor(state.roi[k:k + 1])
    rois = tensor(state.rois[k:k + 1])
    height, width = state.visible.shape[1:]
    visible = torch.from_numpy(state.visible).to(device)
    others = other_instances(visible)[k] & ~visible[k]
    if segmenter.refine is not None:
        from amodal3d.models.refine import refine_inputs

        refined, _ = segmenter.refine({"x": refine_inputs(roi, prior_roi)})
        amodal = paste(refined.amodal, rois, height, width)[0] > 0.5
        amodal = visible[k] | (amodal & others) if segmenter.occluder_constraint else amodal | visible[k]
    else:
        amodal = (paste(prior_roi, rois, height, width)[0] > 0.5) | visible[k]
    prior = paste(prior_roi, rois, height, width)[0] > 0.5
    known = ~others
    inter = (prior & known & visible[k]).sum().item()
    union = ((prior & known) | visible[k]).sum().item()
    return Render(prior.cpu().numpy(), amodal.cpu().numpy(), inter / union if union else 0.0,
                  time.perf_counter() - start)


def draw(state: ViewState, k: int, render: Render) -> Image.Image:
    """The image with instance ``k``'s visible mask solid, its re-rendered hidden part hatched and the
    rendered prior outlined in white."""
    picture = np.asarray(overlay(state.image, state.visible[k:k + 1], render.amodal[None]
                                 ).convert("RGB")).copy()
    padded = np.pad(render.prior, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    picture[render.prior & ~inner] = 255
    return Image.fromarray(picture)
