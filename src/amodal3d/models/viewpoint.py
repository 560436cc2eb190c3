"""Step 3: unsupervised viewpoint estimation with a camera multiplex.

From an ROI feature, predict ``K`` camera hypotheses (azimuth over the full circle as cos/sin,
elevation, distance, ROI offset and scale) and a score per hypothesis. Training renders every
hypothesis and keeps the best per instance (the others get no silhouette gradient), while the
scores learn to predict which one wins; at inference the best-scored hypothesis is used. Several
hypotheses keep azimuth from collapsing onto one side of a (nearly) symmetric silhouette.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Cameras:
    """Camera parameters, each with leading dims (B, K) (or (B,) once a hypothesis is chosen)."""

    azimuth: torch.Tensor     # degrees in (-180, 180]
    elevation: torch.Tensor   # degrees
    distance: torch.Tensor    # object units
    offset: torch.Tensor      # (..., 2) ROI pixels from the ROI centre, x right, y down
    scale: torch.Tensor       # dimensionless zoom of the canonical focal length

    def select(self, index: torch.Tensor) -> Cameras:
        """Pick hypothesis ``index`` (B,) of each instance: (B, K, ...) -> (B, ...)."""
        rows = torch.arange(index.shape[0], device=index.device)
        return Cameras(*(field[rows, index] for field in (self.azimuth, self.elevation, self.distance,
                                                          self.offset, self.scale)))

    def flatten(self) -> Cameras:
        """(B, K, ...) -> (B * K, ...)."""
        return Cameras(*(f.reshape(-1, *f.shape[2:]) for f in (self.azimuth, self.elevation, self.distance,
                                                                self.offset, self.scale)))


def bounded(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map unbounded ``x`` into (low, high) with a sigmoid (0 -> the middle)."""
    return low + (high - low) * torch.sigmoid(x)


class ViewpointHead(nn.Module):
    """Feature (B, D) -> ``Cameras`` with (B, K) fields and hypothesis logits (B, K).

    Hypothesis k starts at azimuth ``360 k / K`` (a fixed prior angle added to the predicted one),
    so the hypotheses cover the circle from the first step."""

    def __init__(self, feature_dim: int, hypotheses: int = 4, roi_size: int = 64,
                 elevation_range: tuple[float, float] = (-30.0, 60.0),
                 distance_range: tuple[float, float] = (1.5, 6.0),
                 scale_range: tuple[float, float] = (0.3, 3.0)):
        super().__init__()
        self.hypotheses = hypotheses
        self.roi_size = roi_size
        self.elevation_range = elevation_range
        self.distance_range = distance_range
        self.log_scale_range = (math.log(scale_range[0]), math.log(scale_range[1]))
        self.params = nn.Linear(feature_dim, hypotheses * 7)
        self.scores = nn.Linear(feature_dim, hypotheses)
        nn.init.zeros_(self.params.weight)
        nn.init.zeros_(self.params.bias)
        with torch.no_grad():  # cos/sin outputs start at (1, 0): the prior angle of each hypothesis
            self.params.bias.view(hypotheses, 7)[:, 0] = 1.0
        prior = torch.arange(hypotheses, dtype=torch.float32) * (360.0 / hypotheses)
        self.register_buffer("prior_azimuth", prior, persistent=False)

    def forward(self, feature: torch.Tensor) -> tuple[Cameras, torch.Tensor]:
        b = feature.shape[0]
        p = self.params(feature).view(b, self.hypotheses, 7)
        azimuth = torch.rad2deg(torch.atan2(p[..., 1], p[..., 0])) + self.prior_azimuth
        azimuth = torch.remainder(azimuth + 180.0, 360.0) - 180.0
        cameras = Cameras(
            azimuth=azimuth,
            elevation=bounded(p[..., 2], *self.elevation_range),
            distance=bounded(p[..., 3], *self.distance_range),
            offset=torch.tanh(p[..., 4:6]) * (self.roi_size / 2.0),
            scale=torch.exp(bounded(p[..., 6], *self.log_scale_range)),
        )
        return cameras, self.scores(feature)


def angular_error(predicted_deg: torch.Tensor, true_deg: torch.Tensor) -> torch.Tensor:
    """Absolute angle difference in [0, 180] degrees, elementwise."""
    return (torch.remainder(predicted_deg - true_deg + 180.0, 360.0) - 180.0).abs()
