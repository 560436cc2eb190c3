"""Seeded photometric and geometric augmentation of detection samples (synthetic-to-real gap).

Images are float (3, H, W) in [0, 1]; targets follow :class:`amodal3d.data.dataset.AmodalDataset`
(boxes xyxy pixels, masks (N, H, W)). Every random draw comes from the ``torch.Generator`` passed in, so a
sample's augmentation depends only on (seed, epoch, index): identical with any number of workers and
after resuming.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF

from amodal3d.engine.config import check_range

BOX_KEYS = ("boxes", "amodal_boxes", "visible_boxes")
MASK_KEYS = ("masks", "amodal_masks", "visible_masks", "occluder_masks")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and strengths; all zero = no augmentation."""

    hflip: float = 0.5              # probability of a horizontal flip
    color_jitter: float = 0.8       # probability of colour jitter
    brightness: float = 0.3         # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03               # shift drawn from [-h, h] (fraction of the colour wheel)
    blur: float = 0.2               # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    noise: float = 0.3              # probability of additive Gaussian noise
    noise_std: tuple[float, float] = (0.005, 0.03)

    def __post_init__(self) -> None:
        for name in ("hflip", "color_jitter", "blur", "noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        for name in ("brightness", "contrast", "saturation"):
            check_range(self, name, 0, 1)
        check_range(self, "blur_sigma", 0, 10, low_open=True)
        check_range(self, "noise_std", 0, 1)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror xyxy boxes (N, 4) in an image of ``width`` pixels: x -> width - x (x0 and x1 swap)."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def mirror_azimuth(azimuth: torch.Tensor) -> torch.Tensor:
    """Azimuth (degrees, (-180, 180]) of the mirrored view: -azimuth, with -180 mapped to 180."""
    out = -azimuth
    return torch.where(out <= -180.0, out + 360.0, out)


def hflip_sample(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Flip an image and its target left-right: every box and mask key, and the viewpoint's azimuth
    (elevation and distance are unchanged by a mirror about the vertical image axis)."""
    width = image.shape[-1]
    target = dict(target)
    for key in BOX_KEYS:
        if key in target:
            target[key] = flip_boxes(target[key], width)
    for key in MASK_KEYS:
        if key in target:
            target[key] = target[key].flip(-1)
    if "viewpoint" in target:
        viewpoint = target["viewpoint"].clone()
        viewpoint[:, 0] = mirror_azimuth(viewpoint[:, 0])
        target["viewpoint"] = viewpoint
    return image.flip(-1), target


def color_jitter(image: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue changes in a random order; image (3, H, W) in [0, 1]."""
    ops = [
        lambda x, f: TF.adjust_brightness(x, f), lambda x, f: TF.adjust_contrast(x, f),
        lambda x, f: TF.adjust_saturation(x, f), lambda x, f: TF.adjust_hue(x, f),
    ]
    strengths = (config.brightness, config.contrast, config.saturation)
    factors = [_uniform(generator, 1 - s, 1 + s) for s in strengths]
    factors.append(_uniform(generator, -config.hue, config.hue))
    active = [config.brightness > 0, config.contrast > 0, config.saturation > 0, config.hue > 0]
    for i in torch.randperm(4, generator=generator).tolist():
        if active[i]:
            image = ops[i](image, factors[i])
    return image.clamp(0.0, 1.0)


def augment_sample(image: torch.Tensor, target: dict, config: AugmentConfig,
                   generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """One random augmentation of (image (3, H, W) float [0, 1], target). Pure given the generator."""
    if float(torch.rand((), generator=generator)) < config.hflip:
        image, target = hflip_sample(image, target)
    if float(torch.rand((), generator=generator)) < config.color_jitter:
        image = color_jitter(image, config, generator)
    if float(torch.rand((), generator=generator)) < config.blur:
        sigma = _uniform(generator, *config.blur_sigma)
        kernel = 2 * max(1, round(2 * sigma)) + 1
        image = TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])
    if float(torch.rand((), generator=generator)) < config.noise:
        std = _uniform(generator, *config.noise_std)
        image = (image + std * torch.randn(image.shape, generator=generator)).clamp(0.0, 1.0)
    return image, target


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (a fixed mix of the three integers)."""
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % (2**63 - 1)


class AugmentedDataset(torch.utils.data.Dataset):
    """``dataset[i]`` augmented with a generator seeded by (seed, epoch, i). Call :meth:`set_epoch`
    before each epoch (the trainer does) so the augmentations change from one epoch to the next."""

    def __init__(self, dataset, config: AugmentConfig, seed: int = 0):
        self.dataset = dataset
        self.config = config
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
        return augment_sample(image, target, self.config, generator)
