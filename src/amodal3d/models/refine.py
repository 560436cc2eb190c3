"""Step 5: region-specific edge refinement of the rendered 3D prior.

Per instance, at ROI resolution: RGB, visible mask, rendered prior (soft), occluder mask and
inside-image mask -> amodal mask logits. Region-specific: inside the visible mask the answer *is*
the visible mask (the visible boundary is trusted); outside it the network refines the prior, with
the loss weighted up on the occluded region and on a band around the prior's edge.
``use_prior=False`` gives the ablation ``a3d-no-prior``: the same network with the prior channel
zeroed, i.e. a purely 2D completion head of the same size, trained with the same loss (its edge band
still comes from the prior, so that the two differ in their input only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from amodal3d.engine.config import check_range
from amodal3d.engine.weights import load_model
from amodal3d.roi import other_instances

WEIGHTS_KIND = "refine"
REFINE_CHANNELS = 7  # RGB, visible, prior, occluder, inside


@dataclass(frozen=True)
class RefineConfig:
    width: int = 24
    use_prior: bool = True
    occluded_weight: float = 4.0     # extra loss weight on occluder pixels (where the hidden part lies)
    edge_weight: float = 2.0         # extra loss weight on a band around the prior's edge
    edge_band: int = 3               # half width of that band in ROI pixels
    prior_fit_steps: int = 0         # render-and-compare steps fitting the prior's camera to the visible
                                     # mask (shape.fit_to_visible), in training and at inference

    def __post_init__(self) -> None:
        check_range(self, "width", 1, 512)
        check_range(self, "occluded_weight", 0, 1000)
        check_range(self, "edge_weight", 0, 1000)
        check_range(self, "edge_band", 0, 64)
        check_range(self, "prior_fit_steps", 0, 1000)


# end to end, steps 2-5's amodal probabilities and the step-1 amodal head's are averaged and
# thresholded here (weigh_detector_amodal; chosen on the validation split: docs/results.md, "End to end")
DETECTOR_AMODAL_THRESHOLD = 0.35


@dataclass(frozen=True)
class RefineOutput:
    logits: torch.Tensor   # (B, S, S) amodal logits outside the visible mask
    amodal: torch.Tensor   # (B, S, S) probabilities: 1 inside the visible mask, sigmoid(logits) outside


def refine_inputs(roi: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Shape-stage ROI (B, 6, S, S) + prior (B, S, S) -> refinement input (B, 7, S, S)."""
    return torch.cat([roi[:, :4], prior[:, None], roi[:, 4:6]], dim=1)


def hidden_under_occluders(amodal: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool amodal and visible masks of one image -> the visible mask plus the part of
    ``amodal`` under the other instances' visible masks. A hidden part must lie behind something:
    where no other instance is seen, the image shows what is there (exact when every occluder is an
    instance, as in generated scenes; pixels cut by the image border are outside these masks anyway)."""
    return visible | (amodal & other_instances(visible))


def weigh_detector_amodal(refined: torch.Tensor, detector: torch.Tensor,
                          threshold: float = DETECTOR_AMODAL_THRESHOLD) -> torch.Tensor:
    """(N, H, W) amodal-mask probabilities of steps 2-5 and of the detector's amodal head, for the
    same instances -> (N, H, W) bool: where their mean exceeds ``threshold``. A pixel joins when one side
    alone is sure of it (p > 2 x threshold) or both lean towards it."""
    return (refined + detector) / 2 > threshold


def prior_edge_band(prior: torch.Tensor, band: int) -> torch.Tensor:
    """(B, S, S) {0, 1}: pixels within ``band`` of the prior's (> 0.5) boundary."""
    mask = (prior > 0.5).float()[:, None]
    k = 2 * band + 1
    dilated = F.max_pool2d(mask, k, stride=1, padding=band)
    eroded = -F.max_pool2d(-mask, k, stride=1, padding=band)
    return (dilated - eroded)[:, 0]


def region_loss(logits: torch.Tensor, amodal: torch.Tensor, visible: torch.Tensor, occluder: torch.Tensor,
                band: torch.Tensor, config: RefineConfig) -> torch.Tensor:
    """Weighted BCE outside the visible mask (B, S, S inputs): weight 1 + occluded_weight on occluder
    pixels + edge_weight on the prior's edge band, 0 inside the visible mask."""
    weight = (1.0 + config.occluded_weight * occluder + config.edge_weight * band) * (1.0 - visible)
    bce = F.binary_cross_entropy_with_logits(logits, amodal, reduction="none")
    return (bce * weight).flatten(1).sum(1).div(weight.flatten(1).sum(1).clamp_min(1.0)).mean()


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True))


class RefineNet(nn.Module):
    """A small U-Net (three scales). ``forward(inputs, targets=None) -> (RefineOutput, losses)`` with
    ``inputs = {"x": (B, 7, S, S)}`` from :func:`refine_inputs` and ``targets = {"amodal": (B, S, S)}``."""

    def __init__(self, config: RefineConfig = RefineConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.enc1, self.enc2, self.enc3 = _conv(REFINE_CHANNELS, w), _conv(w, 2 * w), _conv(2 * w, 4 * w)
        self.dec2, self.dec1 = _conv(6 * w, 2 * w), _conv(3 * w, w)
        self.out = nn.Conv2d(w, 1, 1)

    def forward(self, inputs: dict, targets: dict | None = None) -> tuple[RefineOutput, dict]:
        x = inputs["x"]
        visible, prior, occluder = x[:, 3], x[:, 4], x[:, 5]
        if not self.config.use_prior:  # the input only: the loss keeps the prior's edge band (same objective)
            x = torch.cat([x[:, :4], torch.zeros_like(x[:, 4:5]), x[:, 5:]], dim=1)
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        logits = self.out(d1)[:, 0]
        amodal = torch.where(visible > 0.5, torch.ones_like(logits), torch.sigmoid(logits))
        losses = {}
        if targets is not None:
            band = prior_edge_band(prior, self.config.edge_band)
            losses["loss_refine"] = region_loss(logits, targets["amodal"], visible, occluder, band, self.config)
        return RefineOutput(logits, amodal), losses


def load_refine(path: str | Path, device: str | torch.device = "cpu") -> RefineNet:
    """Rebuild a trained refinement net from safetensors + JSON (never unpickles)."""
    return load_model(path, WEIGHTS_KIND, RefineNet, RefineConfig, device)
