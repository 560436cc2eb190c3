"""Blending: fragments -> silhouette images (B, H, W) in [0, 1].

Soft silhouette (SoftRas): ``S = 1 - prod_f (1 - D_f)`` with ``D_f = sigmoid(dist2_f / sigma)``,
computed as ``1 - exp(sum_f log(1 - D_f))`` where ``log(1 - D) = -softplus(dist2 / sigma)`` (stable)
is clamped below at ``log(clamp_eps)`` per face (``D <= 1 - clamp_eps``): saturated faces deep inside
contribute a bounded term and no gradient. Also the slow dense reference (all pixels x all faces).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from amodal3d.render.rasterize import (
    DEFAULT_EPS,
    DEFAULT_MAX_PAIRS,
    DEFAULT_SIGMA,
    DEFAULT_ZNEAR,
    HardFragments,
    SoftFragments,
    pixel_centres,
    rasterize_hard,
    rasterize_soft,
    signed_dist2,
)

DEFAULT_CLAMP_EPS = 1e-7


def log_complement(dist2: torch.Tensor, sigma: float, clamp_eps: float = DEFAULT_CLAMP_EPS) -> torch.Tensor:
    """``log(1 - sigmoid(dist2 / sigma))`` clamped to ``>= log(clamp_eps)``; same shape as ``dist2``."""
    return (-F.softplus(dist2 / sigma)).clamp_min(math.log(clamp_eps))


def soft_silhouette(fragments: SoftFragments, sigma: float | None = None,
                    clamp_eps: float = DEFAULT_CLAMP_EPS) -> torch.Tensor:
    """Soft silhouette (B, H, W) in [0, 1] (dtype of ``dist2``) from :class:`SoftFragments`.

    ``sigma`` (px^2) defaults to the one the fragments were culled with; a larger one would need a
    wider margin (re-rasterise instead). Differentiable w.r.t. ``fragments.dist2``.
    """
    sigma = fragments.sigma if sigma is None else sigma
    height, width = fragments.image_size
    npix = fragments.batch_size * height * width
    log_sum = fragments.dist2.new_zeros(npix).index_add(
        0, fragments.pix, log_complement(fragments.dist2, sigma, clamp_eps))
    return (1.0 - torch.exp(log_sum)).view(fragments.batch_size, height, width)


def hard_silhouette(fragments: HardFragments, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Binary silhouette (B, H, W) of ``dtype`` (1 on covered pixels) from :class:`HardFragments`."""
    return fragments.mask.to(dtype)


def soft_silhouette_dense(uv: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int],
                          sigma: float, depth: torch.Tensor | None = None,
                          clamp_eps: float = DEFAULT_CLAMP_EPS, znear: float = DEFAULT_ZNEAR) -> torch.Tensor:
    """Slow, obvious reference: every pixel against every face, plain autograd.

    ``uv`` (B, V, 2) pixels, ``faces`` (F, 3), ``sigma`` px^2, optional ``depth`` (B, V) (faces with a
    vertex at ``depth <= znear`` are dropped). Memory O(B * F * H * W). Returns (B, H, W) in [0, 1].
    """
    tri = uv[:, faces]                                           # (B, F, 3, 2)
    centres = pixel_centres(image_size, uv.dtype, uv.device)     # (H, W, 2)
    d2 = signed_dist2(centres[None, None], tri[:, :, None, None])  # (B, F, H, W)
    logc = log_complement(d2, sigma, clamp_eps)
    if depth is not None:
        valid = (depth[:, faces] > znear).all(dim=-1)            # (B, F)
        logc = logc * valid[:, :, None, None].to(logc.dtype)
    return 1.0 - torch.exp(logc.sum(dim=1))


def render_soft_silhouette(uv: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int],
                           sigma: float = DEFAULT_SIGMA, depth: torch.Tensor | None = None,
                           eps: float = DEFAULT_EPS, max_pairs: int = DEFAULT_MAX_PAIRS) -> torch.Tensor:
    """:func:`rasterize_soft` then :func:`soft_silhouette`: (B, H, W) in [0, 1], differentiable."""
    return soft_silhouette(rasterize_soft(uv, faces, image_size, sigma=sigma, depth=depth, eps=eps,
                                          max_pairs=max_pairs))


def render_hard_silhouette(uv: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor,
                           image_size: tuple[int, int]) -> torch.Tensor:
    """:func:`rasterize_hard` then :func:`hard_silhouette`: (B, H, W) float32 in {0, 1}."""
    return hard_silhouette(rasterize_hard(uv, depth, faces, image_size))
