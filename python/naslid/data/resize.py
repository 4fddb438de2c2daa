"""Downsizing stored uint8 images once at load time: exact block means where the size divides,
else antialiased bilinear (``resize_uint8``); see ``naslid.data``'s docstring."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .images import TensorImageSet


def resize_uint8(images: torch.Tensor, size: int, *, chunk: int = 4096) -> tuple[torch.Tensor, str]:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size) and the method used: ``"none"`` (already that
    size), ``"avg_pool"`` (H and W integer multiples of ``size``: exact block means) or
    ``"bilinear"`` (antialiased; align_corners=False). Rounded half-to-even, computed in float32 in
    chunks of ``chunk`` images (bounded memory). Only downsizing: ValueError when ``size`` exceeds
    H or W."""
    n, c, h, w = images.shape
    method = _resize_method(h, w, size)
    if method == "none":
        return images, method
    pool = method == "avg_pool"
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for i in range(0, n, chunk):
        x = images[i:i + chunk].float()
        if pool:
            x = F.avg_pool2d(x, kernel_size=(h // size, w // size))
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out, method


def _resize_method(h: int, w: int, size: int) -> str:
    if size > h or size > w:
        raise ValueError(f"resize_uint8: size {size} exceeds the images' {h}x{w}")
    if (h, w) == (size, size):
        return "none"
    return "avg_pool" if h % size == 0 and w % size == 0 else "bilinear"


def _resized(imageset: TensorImageSet, size: int) -> TensorImageSet:
    return TensorImageSet(resize_uint8(imageset.images, size)[0], imageset.labels)
