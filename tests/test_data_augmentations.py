"""SimCLR's random views (alignjax.data.augmentations): seeded, in range, validated."""

import numpy as np
import pytest

from alignjax.config import ConfigError
from alignjax.data.augmentations import ImageAugmentation, gaussian_jitter, random_affine


def test_views_are_seeded_and_stay_images():
    image = np.zeros((16, 16, 3), np.float32)
    image[4:12, 6:10] = 1.0
    a = random_affine(np.random.default_rng(0), image)
    b = random_affine(np.random.default_rng(0), image)
    c = random_affine(np.random.default_rng(1), image)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == image.shape and 0.0 <= a.min() and a.max() <= 1.0
    still = ImageAugmentation(
        max_rotation=0, scale_range=(1, 1), max_shift=0, flip=False, noise_std=0
    )
    np.testing.assert_allclose(still(np.random.default_rng(0), image), image, atol=1e-6)
    x = np.zeros(4, np.float32)
    assert np.std(
        gaussian_jitter(np.random.default_rng(0), np.tile(x, (1000, 1)), 0.5)
    ) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(noise_std=-1.0), "ImageAugmentation.noise_std=-1.0: must be a finite number >= 0"),
        (
            dict(max_rotation=float("nan")),
            r"max_rotation=nan: must be a finite number in \[0, 180\]",
        ),
        (
            dict(scale_range=(0.0, 1.0)),
            r"scale_range=\(0.0, 1.0\): every value must be a finite number > 0",
        ),
        (dict(scale_range=(1.2, 0.8)), "scale_range must satisfy 0 < low <= high"),
        (dict(max_shift=2.0), r"max_shift=2.0: must be a finite number in \[0, 1\]"),
    ],
)
def test_bad_augmentations_name_the_field(fields, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        ImageAugmentation(**fields)
