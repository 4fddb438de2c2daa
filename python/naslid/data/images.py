"""Image sets: ``ImageSet`` (the interface: labels, ``get(idx)`` -> uint8 (B, C, H, W)),
``TensorImageSet`` (images in memory) and ``FolderImageSet`` (files read lazily with PIL), and
seeded class-stratified subsets of them (``stratified_take``)."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


# ------------------------------------------------------------------------------------------------
# image sets
# ------------------------------------------------------------------------------------------------
class ImageSet:
    """A labelled set of images. ``labels``: int64 (N,); ``get(indices)`` -> uint8 (B, C, H, W)."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())

    def get(self, indices: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageSet":  # pragma: no cover
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.get(torch.zeros(1, dtype=torch.long)).shape[1:])  # type: ignore[return-value]


class TensorImageSet(ImageSet):
    """In-memory images: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"TensorImageSet: images must be uint8 (N, C, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        if labels.dim() != 1 or labels.numel() != images.shape[0]:
            raise ValueError(f"TensorImageSet: {images.shape[0]} images but labels of shape "
                             f"{tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images[indices]

    def subset(self, indices) -> "TensorImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorImageSet(self.images[idx], self.labels[idx])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


class FolderImageSet(ImageSet):
    """Images read lazily from files with PIL, resized to ``image_size`` (square), ``channels`` 1|3."""

    def __init__(self, files: Sequence[str], labels: torch.Tensor, image_size: int, channels: int):
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.image_size = int(image_size)
        self.channels = int(channels)

    def _load(self, path: str) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as im:
                im = im.convert("L" if self.channels == 1 else "RGB")
                im = im.resize((self.image_size, self.image_size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise ValueError(f"imagefolder: cannot read image {path!r}: {e}") from e
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.long).flatten().tolist()
        return torch.stack([self._load(self.files[i]) for i in idx])

    def subset(self, indices) -> "FolderImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long).tolist()
        return FolderImageSet([self.files[i] for i in idx], self.labels[idx], self.image_size,
                              self.channels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


# ------------------------------------------------------------------------------------------------
# stratified, seeded index selection
# ------------------------------------------------------------------------------------------------
def stratified_take(labels: torch.Tensor, n: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(len(labels))`` into ``n`` taken indices and the rest, per class in proportion.

    Per class c with n_c members the quota is n * n_c / N rounded by largest remainder (ties:
    lower class id first), so the quotas sum to n exactly; members of each class are drawn
    uniformly with ``generator``. Returns (taken, rest), each sorted int64 indices.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    N = labels.numel()
    if not 0 <= n <= N:
        raise ValueError(f"stratified_take: n={n} outside [0, {N}]")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / max(N, 1)
    quota = torch.floor(exact).long()
    short = n - int(quota.sum())
    if short > 0:
        frac = exact - quota.double()
        order = sorted(range(len(classes)), key=lambda i: (-float(frac[i]), i))
        for i in order[:short]:
            quota[i] += 1
    taken = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        members = torch.nonzero(labels == c).flatten()
        perm = torch.randperm(members.numel(), generator=generator)
        taken.append(members[perm[:q]])
    taken_t = torch.sort(torch.cat(taken)).values if taken else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(N, dtype=torch.bool)
    keep[taken_t] = False
    return taken_t, torch.nonzero(keep).flatten()


def _holdout(imageset: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    g = torch.Generator().manual_seed(int(seed))
    n = int(round(len(imageset) * fraction))
    held, rest = stratified_take(imageset.labels, n, g)
    return imageset.subset(rest), imageset.subset(held)


def _limit(imageset: ImageSet, max_n: int | None, seed: int) -> ImageSet:
    if max_n is None or max_n >= len(imageset):
        return imageset
    g = torch.Generator().manual_seed(int(seed))
    taken, _ = stratified_take(imageset.labels, int(max_n), g)
    return imageset.subset(taken)
