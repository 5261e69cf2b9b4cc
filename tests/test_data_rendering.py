"""The rasteriser: areas and ink amounts against geometry, anti-aliasing, batching."""

import numpy as np
import pytest

from alignjax.data import rendering


def test_pixel_aligned_square_is_exact():
    square = np.array([[[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]]])
    image = rendering.fill_polygons(square, 8, 8)[0]
    expected = np.zeros((8, 8), np.float32)
    expected[2:6, 2:6] = 1.0
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize(
    "vertices",
    [
        [[10.3, 10.7], [40.3, 10.7], [40.3, 40.7], [10.3, 40.7]],  # off-grid square, area 900
        [[5.0, 5.0], [50.0, 9.0], [20.0, 45.0]],  # triangle, area 870
        [[32.0, 4.0], [60.0, 32.0], [32.0, 60.0], [20.0, 32.0]],  # kite, area 1120
    ],
)
def test_filled_area_matches_shoelace(vertices):
    v = np.asarray(vertices)
    x, y = v[:, 0], v[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    image = rendering.fill_polygons(v[None], 64, 64)[0]
    assert image.sum() == pytest.approx(area, rel=0.01)
    # Anti-aliasing: the edges produce intermediate values.
    assert np.any((image > 0.05) & (image < 0.95))


def test_fill_ignores_orientation_and_padding():
    v = np.array([[10.0, 12.0], [50.0, 8.0], [44.0, 50.0], [14.0, 40.0]])
    forward = rendering.fill_polygons(v[None], 64, 64)
    backward = rendering.fill_polygons(v[::-1][None], 64, 64)
    padded = rendering.fill_polygons(np.concatenate([v, v[-1:], v[-1:]])[None], 64, 64)
    np.testing.assert_allclose(forward, backward, atol=1e-5)
    np.testing.assert_allclose(forward, padded, atol=1e-5)


def test_signed_distance_of_a_square():
    square = np.array([[[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]]])
    d = rendering.polygon_signed_distance(square, 8, 8)[0]
    assert d[3, 3] == pytest.approx(-1.5)  # centre (3.5, 3.5): 1.5 inside
    assert d[0, 3] == pytest.approx(1.5)  # centre (3.5, 0.5): 1.5 above
    assert d[0, 0] == pytest.approx(np.sqrt(2 * 1.5**2))  # diagonal to the corner


def test_stroke_ink_is_length_times_width():
    # A long diagonal segment well inside the image: ink = length x width.
    start, end = np.array([[[8.0, 10.0]]]), np.array([[[55.0, 50.0]]])
    length = np.linalg.norm(end - start)
    for width in (1.0, 1.5, 3.0):
        image = rendering.stroke_segments(start, end, width, 64, 64)[0]
        # Round caps add a half disc at each end.
        assert image.sum() == pytest.approx(length * width + np.pi * width**2 / 4, rel=0.03)
        assert np.any((image > 0.05) & (image < 0.95))


def test_thin_lines_stay_faint():
    image = rendering.stroke_segments([[[0.0, 2.5]]], [[[4.0, 2.5]]], 0.4, 5, 4)[0]
    np.testing.assert_allclose(image[2], 0.4, atol=1e-6)
    assert image.sum() == pytest.approx(1.6, abs=1e-5)


def test_circle_outline_ink_and_points():
    ring = rendering.stroke_circles([[[32.0, 32.0]]], [[20.0]], 1.5, 64, 64)[0]
    assert ring.sum() == pytest.approx(2 * np.pi * 20.0 * 1.5, rel=0.02)
    assert ring[32, 32] == 0.0  # outline only
    dot = rendering.draw_points([[[32.3, 31.6]]], 5.0, 64, 64)[0]
    assert dot.sum() == pytest.approx(np.pi * 25.0, rel=0.02)


def test_stroke_polygons_open_and_closed():
    v = np.array([[[10.0, 10.0], [50.0, 10.0], [50.0, 50.0]]])
    closed = rendering.stroke_polygons(v, 1.0, 64, 64)[0]
    opened = rendering.stroke_polygons(v, 1.0, 64, 64, closed=False)[0]
    # The closing edge (50, 50) -> (10, 10) passes through pixel centre (30.5, 30.5).
    assert closed[30, 30] > 0.9 and opened[30, 30] == 0.0
    assert closed.sum() > opened.sum()


def test_mask_hides_primitives():
    starts = np.array([[[5.0, 5.0], [5.0, 20.0]]])
    ends = np.array([[[25.0, 5.0], [25.0, 20.0]]])
    both = rendering.stroke_segments(starts, ends, 1.0, 32, 32)
    first = rendering.stroke_segments(starts[:, :1], ends[:, :1], 1.0, 32, 32)
    masked = rendering.stroke_segments(starts, ends, 1.0, 32, 32, mask=[[True, False]])
    np.testing.assert_array_equal(masked, first)
    assert both.sum() > masked.sum()


def test_batches_and_chunks_match_single_images(monkeypatch):
    rng = np.random.default_rng(0)
    v = rng.uniform(4, 28, (5, 4, 2))
    singles = np.concatenate(
        [rendering.stroke_polygons(v[i : i + 1], 1.5, 32, 32) for i in range(5)]
    )
    fills = np.concatenate([rendering.fill_polygons(v[i : i + 1], 32, 32) for i in range(5)])
    monkeypatch.setattr(rendering, "_CHUNK_PIXELS", 2 * 32 * 32)  # chunks of 2 images
    np.testing.assert_array_equal(rendering.stroke_polygons(v, 1.5, 32, 32), singles)
    np.testing.assert_array_equal(rendering.fill_polygons(v, 32, 32), fills)


def test_composite_is_the_over_operator():
    canvas = np.full((1, 2, 2, 3), 0.2, np.float32)
    coverage = np.array([[[0.0, 0.5], [1.0, 0.25]]], np.float32)
    out = rendering.composite(canvas, coverage, np.array([[1.0, 0.0, 0.6]]))
    np.testing.assert_allclose(out[0, 0, 1], [0.6, 0.1, 0.4])
    np.testing.assert_allclose(out[0, 1, 0], [1.0, 0.0, 0.6])
    np.testing.assert_allclose(out[0, 1, 1], [0.4, 0.15, 0.3])


def test_fit_to_canvas_keeps_aspect_and_flips_y():
    points = np.array([[[0.0, 0.0], [2.0, 1.0]]])
    pixels, scale = rendering.fit_to_canvas(points, 20, 20, margin=2.0)
    assert scale[0] == pytest.approx(8.0)  # width 2 -> 16 pixels
    np.testing.assert_allclose(pixels[0], [[2.0, 14.0], [18.0, 6.0]])


def test_grating_range_and_period():
    stripes = rendering.grating([0.125], [0.0], [0.0], 8, 16)[0]
    assert stripes.min() >= 0.0 and stripes.max() <= 1.0
    np.testing.assert_allclose(stripes[:, :8], stripes[:, 8:], atol=1e-6)  # period 8
    np.testing.assert_allclose(stripes[0], stripes[5])  # constant down the columns


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rendering.fill_polygons(np.zeros((4, 2)), 8, 8), "vertices must have shape"),
        (lambda: rendering.fill_polygons(np.zeros((1, 2, 2)), 8, 8), "at least 3 vertices"),
        (
            lambda: rendering.stroke_segments(np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), -1.0, 8, 8),
            "line_width",
        ),
        (
            lambda: rendering.stroke_segments(np.zeros((1, 1, 2)), np.zeros((1, 2, 2)), 1.0, 8, 8),
            "same shape",
        ),
        (
            lambda: rendering.stroke_circles(np.zeros((1, 1, 2)), np.zeros((1, 2)), 1.0, 8, 8),
            "radii",
        ),
        (lambda: rendering.draw_points(np.full((1, 1, 2), np.nan), 1.0, 8, 8), "finite"),
        (lambda: rendering.fill_polygons(np.zeros((1, 3, 2)), 0, 8), "height"),
        (lambda: rendering.grating([0.7], [0.0], [0.0], 8, 8), "frequency"),
        (
            lambda: rendering.stroke_segments(
                np.zeros((1, 1, 2)), np.ones((1, 1, 2)), 1.0, 8, 8, mask=[True]
            ),
            "mask",
        ),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
