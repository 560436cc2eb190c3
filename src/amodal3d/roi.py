"""Regions of interest around instances: square boxes, crops and pasting back (pure functions).

Boxes are float ``xyxy`` in image pixels (pixel (r, c) covers [c, c+1) x [r, r+1)). An ROI of
``size`` pixels maps box ``(x0, y0, x1, y1)`` onto ``[0, size)^2``, y down, as in the image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from amodal3d.masks import masks_to_boxes


def square_rois(boxes: torch.Tensor, enlarge: float = 2.0, min_side: float = 8.0) -> torch.Tensor:
    """Square boxes (N, 4) centred on ``boxes`` (N, 4) xyxy with side ``enlarge`` x the longer side.
    An occluded object extends beyond its visible box, so the ROI leaves room around it."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half = ((boxes[:, 2:] - boxes[:, :2]).amax(dim=1) * enlarge).clamp_min(min_side) / 2.0
    return torch.cat([centre - half[:, None], centre + half[:, None]], dim=1)


def crop(images: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear crops (N, C, size, size) of ``images`` (B, C, H, W) at ``rois`` (N, 4) xyxy from
    image ``batch_index`` (N,). Outside the image the crop is 0."""
    from torchvision.ops import roi_align  # imported here: reading a dataset (image_tensor) needs no torchvision

    indexed = torch.cat([batch_index[:, None].to(rois), rois], dim=1)
    return roi_align(images, indexed, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2,
                     aligned=True)


def inside_image(rois: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """(N, 1, size, size) float mask of the ROI pixels whose centres fall inside the image."""
    t = (torch.arange(size, device=rois.device, dtype=rois.dtype) + 0.5) / size
    xs = rois[:, 0:1] + t[None] * (rois[:, 2:3] - rois[:, 0:1])  # (N, size)
    ys = rois[:, 1:2] + t[None] * (rois[:, 3:4] - rois[:, 1:2])
    ok_x = (xs >= 0) & (xs < width)
    ok_y = (ys >= 0) & (ys < height)
    return (ok_y[:, :, None] & ok_x[:, None, :]).to(rois.dtype)[:, None]


def paste(roi_maps: torch.Tensor, rois: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Paste ROI maps (N, S, S) (probabilities) back into image space (N, H, W) by bilinear sampling;
    0 outside each ROI."""
    n = roi_maps.shape[0]
    if n == 0:
        return roi_maps.new_zeros((0, height, width))
    xs = torch.arange(width, device=rois.device, dtype=roi_maps.dtype) + 0.5
    ys = torch.arange(height, device=rois.device, dtype=roi_maps.dtype) + 0.5
    # normalised ROI coordinates in [-1, 1] of each image pixel centre (align_corners=False)
    gx = (xs[None] - rois[:, 0:1]) / (rois[:, 2:3] - rois[:, 0:1]) * 2 - 1      # (N, W)
    gy = (ys[None] - rois[:, 1:2]) / (rois[:, 3:4] - rois[:, 1:2]) * 2 - 1      # (N, H)
    grid = torch.stack([gx[:, None, :].expand(n, height, width), gy[:, :, None].expand(n, height, width)], -1)
    return F.grid_sample(roi_maps[:, None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes (N, 4) float32 of bool masks (N, H, W) (pixel edges; an empty mask gives zeros),
    on the masks' device: :func:`amodal3d.masks.masks_to_boxes`."""
    return torch.from_numpy(masks_to_boxes(masks.detach().cpu().numpy())).to(masks.device)


def image_tensor(image: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float (3, H, W) in [0, 1] (on ``device``, when given)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)
    return tensor if device is None else tensor.to(device)


def other_instances(visible: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool visible masks -> (N, H, W) bool: where another instance of the image is seen."""
    return (visible.sum(0, keepdim=True, dtype=torch.int32) - visible.to(torch.int32)) > 0


def roi_inputs(image: torch.Tensor, visible: torch.Tensor, size: int = 64, enlarge: float = 2.0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """ROI inputs of every instance of one image for the shape stage.

    ``image`` (3, H, W) float in [0, 1]; ``visible`` (N, H, W) bool visible masks. Returns ``roi``
    (N, 6, size, size): RGB, the instance's visible mask, its occluder mask (the union of the other
    instances' visible masks outside its own: whatever may hide it), and the inside-image mask; and
    ``rois`` (N, 4) xyxy image pixels, square, ``enlarge`` x the visible box's longer side. True
    visible masks never overlap, so the occluder and visible channels are disjoint in training;
    detected masks can overlap, and the pixels an instance sees itself stay its own."""
    n, (h, w) = visible.shape[0], image.shape[1:]
    if n == 0:
        return image.new_zeros((0, 6, size, size)), image.new_zeros((0, 4))
    rois = square_rois(mask_boxes(visible), enlarge)
    own = visible.float()[:, None]
    others = (other_instances(visible) & ~visible).float()[:, None]
    index = torch.arange(n, device=image.device)
    rgb = crop(image[None], rois, torch.zeros_like(index), size)
    masks = (crop(torch.cat([own, others], 1), rois, index, size) > 0.5).float()
    return torch.cat([rgb, masks, inside_image(rois, h, w, size)], dim=1), rois
