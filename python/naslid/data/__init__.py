"""Datasets, the held-out train/validation split, augmentation and seeded batch loaders.

Modules: ``images`` (image sets), ``readers`` (the formats below), ``download``, ``resize``,
``splits`` (``load_splits``), ``loaders`` (normalisation, augmentation, batches) and
``build_cifar`` (``naslid data cifar10``). The names below are importable from ``naslid.data``.

Datasets (``DATASET_NAMES``)
----------------------------
``digits``       scikit-learn's bundled 8x8 digits (1,797 images, 10 classes, no file needed): the
                 embedded default. Pixel values 0..16 are scaled to 0..255, the image is upscaled
                 bilinearly to ``image_size`` (default 32) and repeated to ``channels`` (default 3),
                 so the same network config runs on digits and on CIFAR. It has no official test
                 split: a seeded class-balanced 20 % is held out as ``test``.
``cifar10``      the standard python-pickle batches ``cifar-10-batches-py/`` (``data_dir`` is that
``cifar100``     folder or its parent; CIFAR-100: ``cifar-100-python/``, fine labels). When absent
                 and ``download=True`` the official tarball is fetched and checked against its MD5;
                 offline that fails with a FileNotFoundError that says what to do.
``npz``          one ``.npz`` file (``data_dir`` is the file) with ``x_train, y_train, x_test,
                 y_test``; images uint8 NHWC (N, H, W, C) with C in {1, 3}, or (N, H, W) grayscale;
                 labels integer (N,). The format ``naslid data cifar10`` writes.

``image_size`` for npz / cifar10 / cifar100 downsizes the stored images once at load time (they
stay uint8 in memory): average pooling when the stored height and width are integer multiples of
it (32 -> 16, 8: exact block means), else bilinear with antialiasing; rounded half-to-even back to
uint8. Upsampling is refused (it adds no information), as is a size below 4. ``summary()`` records
``stored_image_size`` [H, W], ``image_size`` and the ``resize`` method used.
``imagefolder``  ImageNet-style ``data_dir/train/<class>/*.jpg|png|...`` and optionally
                 ``data_dir/val/<class>/...`` (or ``test/``) as the test split; images are read
                 lazily with PIL, converted to RGB (or L for ``channels=1``) and resized to
                 ``image_size`` (default 32). No torchvision needed.

Splits
------
``load_splits`` returns ``DataSplits(train, valid, test)``: ``valid`` is held out of the official
training set (NB201's cifar10-valid protocol: ``valid_fraction=0.5`` -> 25k/25k on CIFAR-10),
seeded and stratified per class (proportional, largest remainder). ``max_train``/``max_valid`` take
seeded stratified subsets for CPU-scale runs. The test split is reachable only through
``DataSplits.test``; ``DataSplits.search_data()`` returns a ``SearchData(train, valid)`` without
it, and the training/evaluation/search code only ever receives loaders or batches built from that.

Images are kept as uint8 (N, C, H, W); loaders yield normalised float32 (B, C, H, W) and int64 (B,).
Normalisation: NB201's CIFAR constants for cifar10/cifar100, ImageNet constants for imagefolder,
per-channel mean/std of the (held-out) training split for npz and digits.
Augmentation (training loaders only, torch ops): random crop with ``pad`` zero padding (4 for
CIFAR-sized images) + horizontal flip; ``digits`` defaults to none (flipping digits changes them).
"""
from ..choices import DATASETS as DATASET_NAMES  # noqa: F401
from .download import download_and_extract  # noqa: F401
from .images import (IMAGE_EXTENSIONS, FolderImageSet, ImageSet, TensorImageSet,  # noqa: F401
                     stratified_take)
from .loaders import BatchLoader, augment_batch, fixed_batches, make_loader, normalize  # noqa: F401
from .readers import (CIFAR_SOURCES, load_cifar, load_digits_sets, load_imagefolder,  # noqa: F401
                      load_npz)
from .resize import resize_uint8  # noqa: F401
from .splits import (CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN,  # noqa: F401
                     IMAGENET_STD, DataSplits, SearchData, channel_stats, load_splits)
