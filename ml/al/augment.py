"""Data augmentation with plain torch ops (torchvision is not a dependency).

Random flips, right-angle rotations, a random affine warp (small rotation, zoom = random crop,
translation) and intensity jitter (brightness, contrast, gamma), drawn per sample from a
``torch.Generator`` so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; zero turns a transform off.

    Attributes
    ----------
    hflip, vflip : probability of a horizontal / vertical flip.
    rot90 : whether to apply a random multiple of 90° (square images only; dermoscopy, not X-rays).
    max_rotation_deg : uniform small rotation in ``[-max, max]`` degrees.
    max_zoom : scale in ``[1 - max, 1 + max]``; zooming in is a random crop resized back.
    max_translate : shift as a share of the image side, in ``[-max, max]`` on each axis.
    brightness, contrast : additive / multiplicative jitter half-widths (intensities in [0, 1]).
    gamma : ``x ** g`` with ``log g`` uniform in ``[-gamma, gamma]``.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    rot90: bool = False
    max_rotation_deg: float = 10.0
    max_zoom: float = 0.1
    max_translate: float = 0.08
    brightness: float = 0.1
    contrast: float = 0.15
    gamma: float = 0.15


def _uniform(n: int, half_width: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * 2.0 - 1.0) * half_width


def augment_batch(
    images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Randomly transform a batch.

    Parameters
    ----------
    images : (B, C, H, W) float tensor in [0, 1]
    config : AugmentConfig
    generator : torch.Generator
        All randomness is drawn from it.

    Returns
    -------
    (B, C, H, W) float tensor in [0, 1]
    """
    x = images
    b = x.shape[0]
    if config.hflip > 0:
        flip = torch.rand(b, generator=generator) < config.hflip
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if config.vflip > 0:
        flip = torch.rand(b, generator=generator) < config.vflip
        x = torch.where(flip[:, None, None, None], x.flip(-2), x)
    if config.rot90 and x.shape[-1] == x.shape[-2]:
        quarter = torch.randint(0, 4, (b,), generator=generator)
        rotated = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
        x = torch.stack(rotated)[quarter, torch.arange(b)]
    angle = _uniform(b, math.radians(config.max_rotation_deg), generator)
    scale = 1.0 + _uniform(b, config.max_zoom, generator)
    shift = torch.stack([_uniform(b, 2 * config.max_translate, generator) for _ in range(2)], dim=1)
    # affine_grid maps output to input coordinates: dividing by the scale zooms in for scale > 1.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1.0 + _uniform(b, config.contrast, generator)[:, None, None, None]
    brightness = _uniform(b, config.brightness, generator)[:, None, None, None]
    x = ((x - mean) * contrast + mean + brightness).clamp(0.0, 1.0)
    gamma = torch.exp(_uniform(b, config.gamma, generator))[:, None, None, None]
    return x.clamp_min(1e-6) ** gamma
