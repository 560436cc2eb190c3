"""Steps 2-4: single-view 3D reconstruction, viewpoint and the rendered amodal prior.

One ROI per instance (RGB, visible mask, occluder mask, inside-image mask; ``roi_size`` square,
see :mod:`amodal3d.roi`) -> an encoder feature -> (a) a mesh: the category's learned template
(an icosphere at start) plus per-vertex offsets, mirror-symmetric about x = 0 by construction;
(b) camera hypotheses (:mod:`amodal3d.models.viewpoint`); (c) the soft silhouette of the mesh seen by
the chosen camera, rendered into the ROI: the 2D amodal prior.

Training needs no 3D, viewpoint or amodal label: the silhouette must cover the visible mask, stay
empty where the ROI shows background, and is free where an occluder hides the object or the ROI
leaves the image (``silhouette_loss``); Laplacian, flatten and edge regularisers keep the mesh smooth.
At inference the same loss, minimised over the chosen camera and the shape code (``fit_to_visible``: a
few Adam steps through the differentiable renderer), aligns the predicted shape with the instance's
visible mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from amodal3d import CATEGORY_NAMES
from amodal3d.engine.config import FieldError, check_range
from amodal3d.engine.weights import load_model
from amodal3d.geometry import focal_from_fov
from amodal3d.models.viewpoint import Cameras, ViewpointHead
from amodal3d.render import (
    edges,
    face_normals,
    icosphere,
    mirror_index,
    project_viewpoint,
    render_hard_silhouette,
    render_soft_silhouette,
    symmetrize,
)
from amodal3d.render.cameras import DEFAULT_FOV_DEG

ROI_CHANNELS = 6  # RGB, visible, occluder, inside-image

WEIGHTS_KIND = "shape-prior"


@dataclass(frozen=True)
class ShapeConfig:
    roi_size: int = 64                  # ROI raster (and rendered prior) side in pixels
    roi_enlarge: float = 2.0            # ROI side / longer side of the visible box
    num_categories: int = len(CATEGORY_NAMES)
    template_subdivisions: int = 3      # icosphere: 642 vertices, 1280 faces
    template_radius: float = 0.3
    feature_dim: int = 256
    width: int = 32                     # channels of the first encoder stage
    hypotheses: int = 4                 # camera multiplex size
    sigma: float = 0.5                  # soft rasterizer blur, squared ROI pixels
    offset_scale: float = 0.1           # scale of the decoder's raw vertex offsets
    lambda_laplacian: float = 0.005
    lambda_flatten: float = 0.0005
    lambda_score: float = 0.1
    # retired (an ablation nobody reported: docs/history.md); kept as a field because the shipped shape
    # config records it (and its digest with it, config_sha256), so only false is accepted
    amodal_supervision: bool = False

    def __post_init__(self) -> None:
        check_range(self, "roi_size", 16, 1024)
        check_range(self, "roi_enlarge", 1, 10)
        check_range(self, "num_categories", 1, 1000)
        check_range(self, "template_subdivisions", 0, 6)
        check_range(self, "template_radius", 0, 10, low_open=True)
        check_range(self, "feature_dim", 1, 4096)
        check_range(self, "width", 1, 512)
        check_range(self, "hypotheses", 1, 64)
        check_range(self, "sigma", 0, 100, low_open=True)
        check_range(self, "offset_scale", 0, 10)
        for name in ("lambda_laplacian", "lambda_flatten", "lambda_score"):
            check_range(self, name, 0, 1000)
        if self.amodal_supervision is not False:
            raise FieldError("amodal_supervision", "the amodal-supervision ablation was removed; only false is "
                                                   "accepted (docs/history.md)")


@dataclass(frozen=True)
class ShapeOutput:
    verts: torch.Tensor            # (B, V, 3) object frame, mirror-symmetric about x = 0
    faces: torch.Tensor            # (F, 3) int64, shared
    cameras: Cameras               # chosen hypothesis, fields (B,) / (B, 2)
    hypothesis_logits: torch.Tensor  # (B, K)
    prior: torch.Tensor            # (B, S, S) soft silhouette of the chosen hypothesis, in [0, 1]
    code: torch.Tensor | None = None      # (B, D) shape code the decoder read (the fit moves it)
    category: torch.Tensor | None = None  # (B,) 0-based template index
    extras: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- pure loss functions

def silhouette_loss(silhouette: torch.Tensor, visible: torch.Tensor, known: torch.Tensor,
                    eps: float = 1e-6) -> torch.Tensor:
    """Per-instance soft-IoU loss (B,) between the rendered ``silhouette`` (B, S, S) and the visible
    mask, counted only where ``known`` (B, S, S) is 1 (visible object or plain background; occluded
    and out-of-image pixels are free)."""
    s, t = silhouette * known, visible * known
    intersection = (s * t).flatten(1).sum(1)
    union = (s + t - s * t).flatten(1).sum(1)
    return 1.0 - intersection / (union + eps)


def laplacian_loss(verts: torch.Tensor, neighbours: torch.Tensor, degree: torch.Tensor) -> torch.Tensor:
    """Mean squared uniform Laplacian (B,): ``verts`` (B, V, 3); ``neighbours`` (E2, 2) directed edges
    (i, j); ``degree`` (V,)."""
    summed = torch.zeros_like(verts).index_add_(1, neighbours[:, 0], verts[:, neighbours[:, 1]])
    lap = verts - summed / degree[None, :, None]
    return lap.pow(2).sum(-1).mean(-1)


def flatten_loss(verts: torch.Tensor, faces: torch.Tensor, face_pairs: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cos)^2 of the angle between normals of faces sharing an edge (B,)."""
    normals = face_normals(verts, faces)                       # (B, F, 3)
    cos = (normals[:, face_pairs[:, 0]] * normals[:, face_pairs[:, 1]]).sum(-1)
    return (1.0 - cos).pow(2).mean(-1)


def adjacent_faces(faces: torch.Tensor) -> torch.Tensor:
    """(P, 2) pairs of face indices that share an edge (closed mesh: every edge has two faces)."""
    f = faces.shape[0]
    corner_edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])   # (3F, 2)
    key = corner_edges.sort(dim=1).values
    face_id = torch.arange(f).repeat(3)
    order = torch.argsort(key[:, 0] * (faces.max() + 1) + key[:, 1])
    sorted_key, sorted_face = key[order], face_id[order]
    same = (sorted_key[1:] == sorted_key[:-1]).all(dim=1)
    return torch.stack([sorted_face[:-1][same], sorted_face[1:][same]], dim=1)


# --------------------------------------------------------------------------- modules

def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class RoiEncoder(nn.Module):
    """(B, 6, S, S) -> (B, feature_dim); four stride-2 stages then global pooling."""

    def __init__(self, width: int = 32, feature_dim: int = 256):
        super().__init__()
        chans = [ROI_CHANNELS, width, width * 2, width * 4, width * 8]
        self.stages = nn.Sequential(*(_block(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.head = nn.Sequential(nn.Linear(chans[-1], feature_dim), nn.ReLU(inplace=True))

    def forward(self, roi: torch.Tensor) -> torch.Tensor:
        x = roi.clone()
        x[:, :3] = x[:, :3] - 0.5
        return self.head(self.stages(x).mean(dim=(2, 3)))


class ShapeDecoder(nn.Module):
    """Feature (B, D) + category (B,) -> mirror-symmetric vertices (B, V, 3): template[c] + offsets."""

    def __init__(self, config: ShapeConfig):
        super().__init__()
        verts, faces = icosphere(config.template_subdivisions, radius=config.template_radius)
        self.register_buffer("faces", faces.long())
        self.register_buffer("mirror", mirror_index(verts))
        self.templates = nn.Parameter(verts[None].repeat(config.num_categories, 1, 1).clone())
        self.embedding = nn.Embedding(config.num_categories, config.feature_dim)
        self.mlp = nn.Sequential(nn.Linear(config.feature_dim, 512), nn.ReLU(inplace=True),
                                 nn.Linear(512, verts.shape[0] * 3))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.offset_scale = config.offset_scale

    def code(self, feature: torch.Tensor, category_index: torch.Tensor) -> torch.Tensor:
        """The shape code (B, D) of an instance: its ROI feature plus its category's embedding."""
        return feature + self.embedding(category_index)

    def decode(self, code: torch.Tensor, category_index: torch.Tensor) -> torch.Tensor:
        """Shape code (B, D) -> mirror-symmetric vertices (B, V, 3)."""
        offsets = self.mlp(code).view(code.shape[0], -1, 3) * self.offset_scale
        return symmetrize(self.templates[category_index] + offsets, self.mirror)

    def forward(self, feature: torch.Tensor, category_index: torch.Tensor) -> torch.Tensor:
        return self.decode(self.code(feature, category_index), category_index)


class ShapePrior(nn.Module):
    """Steps 2-4 in one module (encoder shared by shape and viewpoint).

    ``forward(inputs, targets=None) -> (ShapeOutput, losses)`` with ``inputs`` a dict: ``roi``
    (B, 6, S, S) float (RGB in [0, 1], then the visible, occluder and inside-image masks in {0, 1},
    see :func:`amodal3d.roi.roi_inputs`) and ``labels`` (B,) int64 category ids (1-based).
    The unsupervised losses need nothing beyond the inputs and are computed whenever ``targets``
    is given (a dict, possibly empty: the silhouette is supervised by the visible mask alone)."""

    def __init__(self, config: ShapeConfig = ShapeConfig()):
        super().__init__()
        self.config = config
        self.encoder = RoiEncoder(config.width, config.feature_dim)
        self.decoder = ShapeDecoder(config)
        self.viewpoint = ViewpointHead(config.feature_dim, config.hypotheses, config.roi_size)
        self.focal = focal_from_fov(DEFAULT_FOV_DEG, config.roi_size)
        faces = self.decoder.faces
        e = edges(faces)
        self.register_buffer("directed_edges", torch.cat([e, e.flip(1)]), persistent=False)
        self.register_buffer("degree", torch.bincount(self.directed_edges[:, 0]).float(), persistent=False)
        self.register_buffer("face_pairs", adjacent_faces(faces.cpu()), persistent=False)

    @property
    def faces(self) -> torch.Tensor:
        return self.decoder.faces

    def project(self, verts: torch.Tensor, cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V, 3) vertices, cameras with (B,) fields -> ROI pixel uv (B, V, 2) and depth (B, V)."""
        s = self.config.roi_size
        return project_viewpoint(verts, cameras.azimuth, cameras.elevation, cameras.distance, self.focal,
                                 (s, s), offset=cameras.offset, scale=cameras.scale)

    def render(self, verts: torch.Tensor, cameras: Cameras, soft: bool = True,
               faces: torch.Tensor | None = None) -> torch.Tensor:
        """Silhouette (B, S, S) in [0, 1] of each mesh under its camera (``faces`` (F, 3): another
        mesh's triangles than the template's, e.g. a ground-truth mesh)."""
        s = self.config.roi_size
        faces = self.faces if faces is None else faces
        uv, depth = self.project(verts, cameras)
        if soft:
            return render_soft_silhouette(uv, faces, (s, s), sigma=self.config.sigma, depth=depth)
        return render_hard_silhouette(uv, depth, faces, (s, s))

    def forward(self, inputs: dict, targets: dict | None = None) -> tuple[ShapeOutput, dict]:
        roi = inputs["roi"]
        visible, occluder, inside = roi[:, 3], roi[:, 4], roi[:, 5]
        feature = self.encoder(roi)
        category = (inputs["labels"] - 1).clamp(0, self.config.num_categories - 1)
        code = self.decoder.code(feature, category)
        verts = self.decoder.decode(code, category)
        cameras, logits = self.viewpoint(feature)
        b, k = logits.shape
        losses: dict[str, torch.Tensor] = {}
        if targets is None:
            best = logits.argmax(dim=1)
            chosen = cameras.select(best)
            prior = self.render(verts, chosen)
            return ShapeOutput(verts, self.faces, chosen, logits, prior, code, category), losses

        # camera multiplex: render every hypothesis, keep the best per instance
        all_verts = verts[:, None].expand(b, k, *verts.shape[1:]).reshape(b * k, *verts.shape[1:])
        silhouettes = self.render(all_verts, cameras.flatten()).view(b, k, *visible.shape[1:])
        target = visible[:, None].expand_as(silhouettes)
        known = (1.0 - occluder * (1.0 - visible)) * inside
        known = known[:, None].expand_as(silhouettes)
        per_hypothesis = silhouette_loss(silhouettes.flatten(0, 1), target.flatten(0, 1),
                                         known.flatten(0, 1)).view(b, k)
        best = per_hypothesis.detach().argmin(dim=1)
        rows = torch.arange(b, device=best.device)
        losses["loss_silhouette"] = per_hypothesis[rows, best].mean()
        losses["loss_hypothesis"] = self.config.lambda_score * F.cross_entropy(logits, best)
        losses["loss_laplacian"] = self.config.lambda_laplacian * laplacian_loss(
            verts, self.directed_edges, self.degree).mean() * verts.shape[1]
        losses["loss_flatten"] = self.config.lambda_flatten * flatten_loss(
            verts, self.faces, self.face_pairs).mean() * self.face_pairs.shape[0]
        output = ShapeOutput(verts, self.faces, cameras.select(best), logits, silhouettes[rows, best], code, category,
                             extras={"per_hypothesis_loss": per_hypothesis.detach()})
        return output, losses


def fit_to_visible(model: ShapePrior, verts: torch.Tensor, cameras: Cameras, roi: torch.Tensor,
                   steps: int, lr: float = 0.05, code: torch.Tensor | None = None,
                   category: torch.Tensor | None = None, code_weight: float = 1e-3,
                   faces: torch.Tensor | None = None, fit_angles: bool = True
                   ) -> tuple[Cameras, torch.Tensor, torch.Tensor]:
    """Test-time render-and-compare: refine each instance's camera (azimuth, elevation, ROI offset,
    zoom; distance fixed) and, given its shape ``code`` (B, D) and ``category`` (B,), the code too, with
    ``steps`` Adam steps on the loss the model was trained with. The silhouette must match the visible
    mask wherever the ROI is known (visible object or background) and is free behind occluders, so the
    hidden part is the one the category's learned shape space implies for the visible evidence (the
    code stays near the prediction: ``code_weight`` x squared distance).

    ``verts`` (B, V, 3), ``cameras`` with (B,) fields, ``roi`` (B, 6, S, S) shape-stage input; ``lr``
    is the log-zoom and code step (angles move ``60 lr`` degrees, offsets ``20 lr`` pixels per step).
    ``faces``: the triangles of ``verts`` when they are not the template's (a mesh of its own, no code);
    ``fit_angles=False`` holds azimuth and elevation (only the ROI offset and zoom move).
    Returns the fitted cameras, their soft prior (B, S, S) and the vertices (B, V, 3), without gradients."""
    visible, occluder, inside = roi[:, 3], roi[:, 4], roi[:, 5]
    known = (1.0 - occluder * (1.0 - visible)) * inside
    fit_code = code is not None and category is not None
    verts = verts.detach()
    azimuth = cameras.azimuth.detach().clone().requires_grad_(fit_angles)
    elevation = cameras.elevation.detach().clone().requires_grad_(fit_angles)
    offset = cameras.offset.detach().clone().requires_grad_()
    log_scale = cameras.scale.detach().log().requires_grad_()
    groups = [{"params": [offset], "lr": lr * 20.0}, {"params": [log_scale], "lr": lr}]
    if fit_angles:
        groups.append({"params": [azimuth, elevation], "lr": lr * 60.0})
    if fit_code:
        start_code = code.detach()
        moved = start_code.clone().requires_grad_()
        groups.append({"params": [moved], "lr": lr})
    optimiser = torch.optim.Adam(groups)

    def current() -> Cameras:
        return Cameras(azimuth, elevation, cameras.distance.detach(), offset, log_scale.exp())

    def shape() -> torch.Tensor:
        return model.decoder.decode(moved, category) if fit_code else verts

    leaves = [t for group in groups for t in group["params"]]

    with torch.enable_grad():
        for _ in range(steps):
            loss = silhouette_loss(model.render(shape(), current(), faces=faces), visible, known).sum()
            if fit_code:
                loss = loss + code_weight * (moved - start_code).pow(2).sum()
            # gradients of the fitted tensors only: the model's own parameters are never touched
            for leaf, grad in zip(leaves, torch.autograd.grad(loss, leaves)):
                leaf.grad = grad
            optimiser.step()
            with torch.no_grad():  # the viewpoint camera is undefined at the poles
                elevation.clamp_(-85.0, 85.0)
    with torch.no_grad():
        fitted = Cameras(torch.remainder(azimuth + 180.0, 360.0) - 180.0, elevation.clone(),
                         cameras.distance.detach(), offset.clone(), log_scale.exp())
        final = shape().detach()
        return fitted, model.render(final, fitted, faces=faces), final


def with_fit(model: ShapePrior, output: ShapeOutput, roi: torch.Tensor, steps: int) -> ShapeOutput:
    """``output`` of ``model`` on ``roi`` with its cameras, shape and prior replaced by
    :func:`fit_to_visible`'s after ``steps`` steps (``output`` itself when ``steps`` is 0)."""
    if not steps:
        return output
    cameras, prior, verts = fit_to_visible(model, output.verts, output.cameras, roi, steps,
                                           code=output.code, category=output.category)
    return replace(output, cameras=cameras, prior=prior, verts=verts)


@torch.no_grad()
def image_priors(model: ShapePrior, image: torch.Tensor, visible: torch.Tensor, labels: torch.Tensor,
                 fit_steps: int = 0) -> tuple[torch.Tensor, ShapeOutput | None]:
    """The rendered 3D prior of every instance of one image, pasted back into image space.

    ``image`` (3, H, W) float in [0, 1]; ``visible`` (N, H, W) bool; ``labels`` (N,) int64; ``fit_steps``
    of :func:`fit_to_visible`. Returns prior probabilities (N, H, W) in [0, 1] and the model's
    :class:`ShapeOutput` (None if N = 0), with the fitted cameras and prior when ``fit_steps`` > 0."""
    from amodal3d.roi import paste, roi_inputs

    h, w = image.shape[1:]
    if visible.shape[0] == 0:
        return image.new_zeros((0, h, w)), None
    roi, rois = roi_inputs(image, visible, model.config.roi_size, model.config.roi_enlarge)
    output, _ = model({"roi": roi, "labels": labels})
    output = with_fit(model, output, roi, fit_steps)
    return paste(output.prior, rois, h, w).clamp(0, 1), output


def load_shape_prior(path: str | Path, device: str | torch.device = "cpu") -> ShapePrior:
    """Rebuild a trained shape prior from safetensors + JSON (never unpickles)."""
    return load_model(path, WEIGHTS_KIND, ShapePrior, ShapeConfig, device)
