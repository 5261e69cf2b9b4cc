"""Augmentations for the SimCLR baseline: random views of one item, from an rng.

SimCLR (Chen et al. 2020) learns by pulling together two random views of the same item.
For the synthetic image worlds the views are random affine warps (rotation, scale,
translation), horizontal flips and pixel noise; for vector worlds, Gaussian jitter.
Every function draws all its randomness from the ``numpy.random.Generator`` it is
given, so a Grain ``random_map`` over it is deterministic.

>>> rng = np.random.default_rng(0)
>>> image = np.zeros((16, 16, 1), np.float32)
>>> image[4:12, 4:12] = 1.0
>>> view = random_affine(rng, image)
>>> view.shape, view.dtype, bool(0.0 <= view.min() and view.max() <= 1.0)
((16, 16, 1), dtype('float32'), True)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from alignjax.config import checked, configclass


@configclass
class ImageAugmentation:
    """A random affine warp, flip and noise of ``[H, W, C]`` images in ``[0, 1]``.

    Attributes:
      max_rotation: rotations are uniform in ``[-max_rotation, max_rotation]`` degrees.
      scale_range: isotropic scale factor, uniform in this range.
      max_shift: translation, uniform in ``[-max_shift, max_shift]`` as a fraction of the
        image size, per axis.
      flip: flip left-right with probability 1/2.
      noise_std: standard deviation of added Gaussian pixel noise.
    """

    max_rotation: float = checked(30.0, ge=0, le=180)
    scale_range: tuple[float, float] = checked((0.8, 1.2), gt=0)
    max_shift: float = checked(0.1, ge=0, le=1)
    flip: bool = True
    noise_std: float = checked(0.05, ge=0)

    def __post_init__(self):
        low, high = self.scale_range
        if not low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range!r}")

    def __call__(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        return random_affine(rng, image, self)


def random_affine(
    rng: np.random.Generator, image: np.ndarray, augmentation: ImageAugmentation | None = None
) -> np.ndarray:
    """One random view of ``image`` ``[H, W, C]``: ``float32 [H, W, C]`` clipped to [0, 1].

    The warp rotates and scales about the image centre, then shifts; pixels that come
    from outside the image take the value of the image's border mean (the background).
    """
    aug = augmentation or ImageAugmentation()
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must have shape [H, W, C], got {image.shape}")
    height, width, _ = image.shape
    angle = np.radians(rng.uniform(-aug.max_rotation, aug.max_rotation))
    scale = rng.uniform(*aug.scale_range)
    shift = rng.uniform(-aug.max_shift, aug.max_shift, 2) * np.array([height, width])
    flip = aug.flip and rng.random() < 0.5
    noise = rng.normal(0.0, aug.noise_std, image.shape) if aug.noise_std else 0.0
    # Output pixel o samples input pixel A o + b (scipy's convention): A is the inverse
    # of the forward rotation-and-scale.
    cos, sin = np.cos(angle), np.sin(angle)
    inverse = np.array([[cos, sin], [-sin, cos]]) / scale
    centre = np.array([height - 1, width - 1]) / 2.0
    offset = centre - inverse @ (centre + shift)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).mean(axis=0)
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        out[..., c] = ndimage.affine_transform(
            image[..., c], inverse, offset=offset, order=1, mode="constant", cval=float(border[c])
        )
    if flip:
        out = out[:, ::-1]
    return np.clip(out + noise, 0.0, 1.0).astype(np.float32)


def gaussian_jitter(rng: np.random.Generator, x: np.ndarray, std: float = 0.5) -> np.ndarray:
    """A view of a vector item: ``x + N(0, std^2 I)``, ``float32`` of ``x``'s shape."""
    if std < 0:
        raise ValueError(f"std must be non-negative, got {std!r}")
    x = np.asarray(x, np.float32)
    return (x + rng.normal(0.0, std, x.shape)).astype(np.float32)
