"""Anti-aliased rasterisation of simple vector shapes, in numpy.

The synthetic worlds (quadrilaterals, geometric concepts, hierarchical categories)
draw their images with these functions. Everything is vectorised over a batch of
images, so rendering thousands of 64x64 images takes about a second on one core.

**Frame.** Coordinates are in pixel units, ``x`` to the right (columns) and ``y``
down (rows): pixel ``(i, j)`` is the unit box ``[j, j + 1] x [i, i + 1]`` with centre
``(j + 1/2, i + 1/2)``. Worlds describe their geometry in their own units and map it
here with :func:`fit_to_canvas`.

**Coverage.** A pixel's value is the fraction of its box covered by the shape,
computed analytically from the distance ``d`` of the pixel centre to the shape
(a box filter, exact for edges aligned with the pixel grid):

- filled region with signed distance ``s`` (negative inside):
  ``coverage = clip(1/2 - s, 0, 1)``;
- stroke of width ``w`` centred on a curve (line segment, circle, point):
  ``coverage = |[d - 1/2, d + 1/2] ∩ [-w/2, w/2]|``, the overlap of the pixel's
  one-dimensional footprint with the stroke, so thin strokes (``w < 1``) stay
  faint instead of vanishing.

A union of primitives takes the pointwise maximum of their coverages; colour images
are built by compositing coverages over a background with :func:`composite`.

Images are ``float32`` in ``[0, 1]``, shape ``[batch, height, width]`` (coverage) or
``[batch, height, width, 3]`` (RGB).

Example:

>>> square = np.array([[[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]]])
>>> fill_polygons(square, 8, 8).sum()
np.float32(16.0)
"""

from __future__ import annotations

import numpy as np

# Pixels processed at once: temporaries of 2**18 float32 (1 MB) stay in cache, which
# makes the per-primitive loops below about five times faster than one big broadcast.
_CHUNK_PIXELS = 1 << 18


def _check_points(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [batch, n, 2], got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return array


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_width(line_width: float) -> float:
    if not np.isfinite(line_width) or line_width <= 0:
        raise ValueError(f"line_width must be positive, got {line_width!r}")
    return float(line_width)


def _mask(mask, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {mask.shape}")
    return mask


def pixel_centres(height: int, width: int) -> np.ndarray:
    """Centres of the pixels of a ``height x width`` image.

    Returns:
      ``float32 [height * width, 2]`` array of ``(x, y)`` in row-major pixel order.

    >>> pixel_centres(1, 2)
    array([[0.5, 0.5],
           [1.5, 0.5]], dtype=float32)
    """
    _check_size(height, width)
    ys, xs = np.meshgrid(
        np.arange(height, dtype=np.float32) + 0.5,
        np.arange(width, dtype=np.float32) + 0.5,
        indexing="ij",
    )
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def stroke_coverage(distance: np.ndarray, line_width: float) -> np.ndarray:
    """Coverage of a pixel whose centre is ``distance`` from a stroke's centre line.

    The overlap of ``[d - 1/2, d + 1/2]`` with ``[-w/2, w/2]``, in ``[0, min(1, w)]``.
    """
    half = 0.5 * line_width
    return np.clip(
        np.minimum(distance + 0.5, half) - np.maximum(distance - 0.5, -half), 0.0, 1.0
    ).astype(np.float32)


def fill_coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Coverage of a pixel at ``signed_distance`` from a region (negative inside)."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0).astype(np.float32)


def _chunks(batch: int, pixels: int):
    step = max(1, _CHUNK_PIXELS // pixels)
    for start in range(0, batch, step):
        yield slice(start, min(start + step, batch))


def _min_segment_distance(starts, ends, mask, height, width, inside=False):
    """Distance ``[b, H, W]`` from each pixel centre to the nearest unmasked segment.

    With ``inside=True`` the segments are the closed polygon's edges and the distance
    is signed (negative inside, even-odd rule).
    """
    batch, count = starts.shape[:2]
    pixels = height * width
    centres = pixel_centres(height, width)
    px, py = centres[None, :, 0], centres[None, :, 1]
    out = np.empty((batch, pixels), dtype=np.float32)
    for part in _chunks(batch, pixels):
        a, b, m = starts[part], ends[part], mask[part]
        dx = b[..., 0] - a[..., 0]
        dy = b[..., 1] - a[..., 1]
        inv_length2 = 1.0 / np.maximum(dx * dx + dy * dy, np.float32(1e-12))
        shape = (a.shape[0], pixels)
        best = np.full(shape, np.inf, dtype=np.float32)
        qx, qy, t, tmp = (np.empty(shape, dtype=np.float32) for _ in range(4))
        parity = np.zeros(shape, dtype=bool) if inside else None
        for k in range(count):
            ay = a[:, k, 1, None]
            np.subtract(px, a[:, k, 0, None], out=qx)
            np.subtract(py, ay, out=qy)
            if inside:
                by = b[:, k, 1, None]
                straddles = (ay > py) != (by > py)
                with np.errstate(divide="ignore", invalid="ignore"):
                    x_cross = dx[:, k, None] * qy / dy[:, k, None]
                parity ^= straddles & (qx < x_cross)
            # t = clamp(<q, d> / |d|^2, 0, 1); distance^2 = |q - t d|^2.
            np.multiply(qx, dx[:, k, None], out=t)
            np.multiply(qy, dy[:, k, None], out=tmp)
            t += tmp
            t *= inv_length2[:, k, None]
            np.clip(t, 0.0, 1.0, out=t)
            np.multiply(t, dx[:, k, None], out=tmp)
            qx -= tmp
            np.multiply(t, dy[:, k, None], out=tmp)
            qy -= tmp
            qx *= qx
            qy *= qy
            qx += qy
            qx[~m[:, k]] = np.inf
            np.minimum(best, qx, out=best)
        np.sqrt(best, out=best)
        if inside:
            best[parity] *= -1.0
        out[part] = best
    return out.reshape(batch, height, width)


def stroke_segments(
    starts, ends, line_width: float, height: int, width: int, mask=None
) -> np.ndarray:
    """Draws line segments of a given width (union over the segments of each image).

    Args:
      starts: ``[batch, m, 2]`` segment start points ``(x, y)`` in pixels.
      ends: ``[batch, m, 2]`` segment end points.
      line_width: stroke width in pixels.
      height: image height.
      width: image width.
      mask: optional ``bool [batch, m]``; ``False`` entries are not drawn (lets images
        in one batch have different numbers of segments).

    Returns:
      ``float32 [batch, height, width]`` coverage in ``[0, 1]``.

    >>> line = stroke_segments([[[0.0, 2.5]]], [[[4.0, 2.5]]], 1.0, 5, 4)
    >>> line[0, :, 0].tolist()
    [0.0, 0.0, 1.0, 0.0, 0.0]
    """
    starts = _check_points("starts", starts)
    ends = _check_points("ends", ends)
    if starts.shape != ends.shape:
        raise ValueError(
            f"starts and ends must have the same shape, got {starts.shape} and {ends.shape}"
        )
    _check_size(height, width)
    line_width = _check_width(line_width)
    mask = _mask(mask, starts.shape[:2])
    distance = _min_segment_distance(starts, ends, mask, height, width)
    return stroke_coverage(distance, line_width)


def _polygon_edges(vertices: np.ndarray):
    return vertices, np.roll(vertices, -1, axis=1)


def stroke_polygons(
    vertices, line_width: float, height: int, width: int, closed: bool = True
) -> np.ndarray:
    """Draws the outlines of polygons (or open polylines when ``closed=False``).

    Args:
      vertices: ``[batch, n, 2]`` vertices ``(x, y)`` in pixels, in drawing order.
      line_width: stroke width in pixels.
      height: image height.
      width: image width.
      closed: whether the last vertex connects back to the first.

    Returns:
      ``float32 [batch, height, width]`` coverage.
    """
    vertices = _check_points("vertices", vertices)
    if vertices.shape[1] < 2:
        raise ValueError(f"vertices needs at least 2 points per polygon, got {vertices.shape[1]}")
    starts, ends = _polygon_edges(vertices)
    mask = np.ones(starts.shape[:2], dtype=bool)
    if not closed:
        mask[:, -1] = False
    return stroke_segments(starts, ends, line_width, height, width, mask=mask)


def polygon_signed_distance(vertices, height: int, width: int) -> np.ndarray:
    """Signed distance from each pixel centre to polygons (negative inside).

    Inside is decided by the even-odd rule, so any simple polygon works, convex or
    not, and either orientation.

    Args:
      vertices: ``[batch, n, 2]`` polygon vertices in pixels.
      height: image height.
      width: image width.

    Returns:
      ``float32 [batch, height, width]``.
    """
    vertices = _check_points("vertices", vertices)
    if vertices.shape[1] < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {vertices.shape[1]}")
    _check_size(height, width)
    starts, ends = _polygon_edges(vertices)
    mask = np.ones(starts.shape[:2], dtype=bool)
    return _min_segment_distance(starts, ends, mask, height, width, inside=True)


def fill_polygons(vertices, height: int, width: int) -> np.ndarray:
    """Fills polygons with anti-aliased edges.

    Args:
      vertices: ``[batch, n, 2]`` vertices ``(x, y)`` in pixels (any orientation;
        repeated vertices are allowed, which pads polygons with fewer vertices).
      height: image height.
      width: image width.

    Returns:
      ``float32 [batch, height, width]`` coverage; its sum approximates the area.
    """
    return fill_coverage(polygon_signed_distance(vertices, height, width))


def _min_ring_distance(centres, radii, mask, height, width):
    """Distance ``[b, H, W]`` from each pixel centre to the nearest unmasked circle."""
    batch, count = centres.shape[:2]
    pixels = height * width
    points = pixel_centres(height, width)
    px, py = points[None, :, 0], points[None, :, 1]
    out = np.empty((batch, pixels), dtype=np.float32)
    for part in _chunks(batch, pixels):
        c, r, m = centres[part], radii[part], mask[part]
        shape = (c.shape[0], pixels)
        best = np.full(shape, np.inf, dtype=np.float32)
        qx, qy = np.empty(shape, dtype=np.float32), np.empty(shape, dtype=np.float32)
        for k in range(count):
            np.subtract(px, c[:, k, 0, None], out=qx)
            np.subtract(py, c[:, k, 1, None], out=qy)
            qx *= qx
            qy *= qy
            qx += qy
            np.sqrt(qx, out=qx)
            qx -= r[:, k, None]
            np.abs(qx, out=qx)
            qx[~m[:, k]] = np.inf
            np.minimum(best, qx, out=best)
        out[part] = best
    return out.reshape(batch, height, width)


def stroke_circles(
    centres, radii, line_width: float, height: int, width: int, mask=None
) -> np.ndarray:
    """Draws circle outlines.

    Args:
      centres: ``[batch, m, 2]`` centres in pixels.
      radii: ``[batch, m]`` radii in pixels.
      line_width: stroke width in pixels.
      height: image height.
      width: image width.
      mask: optional ``bool [batch, m]`` of circles to draw.

    Returns:
      ``float32 [batch, height, width]`` coverage.
    """
    centres = _check_points("centres", centres)
    radii = np.asarray(radii, dtype=np.float32)
    if radii.shape != centres.shape[:2]:
        raise ValueError(f"radii must have shape {list(centres.shape[:2])}, got {radii.shape}")
    if not np.all(np.isfinite(radii)) or np.any(radii < 0):
        raise ValueError("radii must be finite and non-negative")
    _check_size(height, width)
    line_width = _check_width(line_width)
    mask = _mask(mask, centres.shape[:2])
    return stroke_coverage(_min_ring_distance(centres, radii, mask, height, width), line_width)


def draw_points(centres, radius: float, height: int, width: int, mask=None) -> np.ndarray:
    """Draws round dots (filled discs of the given radius).

    Args:
      centres: ``[batch, m, 2]`` dot centres in pixels.
      radius: dot radius in pixels.
      height: image height.
      width: image width.
      mask: optional ``bool [batch, m]`` of dots to draw.

    Returns:
      ``float32 [batch, height, width]`` coverage.
    """
    centres = _check_points("centres", centres)
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    _check_size(height, width)
    mask = _mask(mask, centres.shape[:2])
    radii = np.zeros(centres.shape[:2], dtype=np.float32)
    return stroke_coverage(_min_ring_distance(centres, radii, mask, height, width), 2.0 * radius)


def grating(frequency, angle, phase, height: int, width: int, sharpness: float = 4.0) -> np.ndarray:
    """A smooth stripe pattern (texture), one per image.

    ``value = 1/2 + 1/2 tanh(sharpness * sin(2 pi f u + phase)) / tanh(sharpness)``
    with ``u`` the pixel coordinate along direction ``angle``; ``sharpness -> 0`` gives
    a sinusoid and large values square-wave stripes with soft (anti-aliased) edges.

    Args:
      frequency: ``[batch]`` stripes per pixel (keep below 0.5, the Nyquist limit).
      angle: ``[batch]`` direction across the stripes, radians.
      phase: ``[batch]`` phase, radians.
      height: image height.
      width: image width.
      sharpness: edge sharpness (positive).

    Returns:
      ``float32 [batch, height, width]`` in ``[0, 1]``.
    """
    frequency = np.atleast_1d(np.asarray(frequency, dtype=np.float32))
    angle = np.broadcast_to(np.asarray(angle, dtype=np.float32), frequency.shape)
    phase = np.broadcast_to(np.asarray(phase, dtype=np.float32), frequency.shape)
    if frequency.ndim != 1:
        raise ValueError(f"frequency must have shape [batch], got {frequency.shape}")
    if np.any(frequency < 0) or np.any(frequency > 0.5):
        raise ValueError("frequency must lie in [0, 0.5] cycles per pixel")
    if sharpness <= 0:
        raise ValueError(f"sharpness must be positive, got {sharpness!r}")
    _check_size(height, width)
    points = pixel_centres(height, width)
    u = points[None, :, 0] * np.cos(angle)[:, None] + points[None, :, 1] * np.sin(angle)[:, None]
    wave = np.sin(2 * np.pi * frequency[:, None] * u + phase[:, None])
    value = 0.5 + 0.5 * np.tanh(sharpness * wave) / np.tanh(sharpness)
    return value.astype(np.float32).reshape(-1, height, width)


def composite(canvas, coverage, colour) -> np.ndarray:
    """Paints ``colour`` over ``canvas`` with opacity ``coverage`` (the "over" operator).

    ``out = canvas * (1 - coverage) + colour * coverage``, per pixel.

    Args:
      canvas: ``[batch, height, width, 3]`` RGB background.
      coverage: ``[batch, height, width]`` opacity in ``[0, 1]``.
      colour: ``[batch, 3]`` solid colours, or ``[batch, height, width, 3]`` images
        (e.g. a texture).

    Returns:
      ``float32 [batch, height, width, 3]``.

    >>> canvas = np.zeros((1, 1, 2, 3), np.float32)
    >>> composite(canvas, np.array([[[1.0, 0.5]]]), np.array([[1.0, 0.0, 0.0]]))[0, 0]
    array([[1. , 0. , 0. ],
           [0.5, 0. , 0. ]], dtype=float32)
    """
    canvas = np.asarray(canvas, dtype=np.float32)
    coverage = np.asarray(coverage, dtype=np.float32)
    colour = np.asarray(colour, dtype=np.float32)
    if canvas.ndim != 4 or canvas.shape[-1] != 3:
        raise ValueError(f"canvas must have shape [batch, height, width, 3], got {canvas.shape}")
    if coverage.shape != canvas.shape[:3]:
        raise ValueError(f"coverage must have shape {list(canvas.shape[:3])}, got {coverage.shape}")
    if colour.ndim == 2:
        colour = colour[:, None, None, :]
    if colour.shape[0] != canvas.shape[0] or colour.shape[-1] != 3:
        raise ValueError(
            f"colour must have shape [batch, 3] or [batch, height, width, 3], got {colour.shape}"
        )
    alpha = coverage[..., None]
    return canvas * (1.0 - alpha) + colour * alpha


def fit_to_canvas(points, height: int, width: int, margin: float = 2.0, lower=None, upper=None):
    """Maps points to pixels, fitting a box into the image (aspect ratio kept, y up).

    The box ``[lower, upper]`` (per example; the points' bounding box by default) is
    scaled uniformly and centred so that it fills the image minus ``margin`` pixels on
    each side; the world's ``y`` axis points up, the image's down.

    Args:
      points: ``[batch, n, 2]`` world coordinates.
      height: image height.
      width: image width.
      margin: pixels kept free on each side.
      lower: optional ``[batch, 2]`` lower corner of the box to fit.
      upper: optional ``[batch, 2]`` upper corner of the box to fit.

    Returns:
      ``(pixels [batch, n, 2], scale [batch])``: the pixel coordinates and the number
      of pixels per world unit (to convert radii and lengths).

    >>> fit_to_canvas(np.array([[[0.0, 0.0], [1.0, 1.0]]]), 10, 10, margin=1.0)[0]
    array([[[1., 9.],
            [9., 1.]]], dtype=float32)
    """
    points = _check_points("points", points)
    _check_size(height, width)
    if margin < 0 or 2 * margin >= min(height, width):
        raise ValueError(f"margin must lie in [0, {min(height, width) / 2}), got {margin!r}")
    lower = points.min(axis=1) if lower is None else np.asarray(lower, dtype=np.float32)
    upper = points.max(axis=1) if upper is None else np.asarray(upper, dtype=np.float32)
    extent = np.maximum(upper - lower, np.float32(1e-9))
    scale = np.minimum((width - 2 * margin) / extent[:, 0], (height - 2 * margin) / extent[:, 1])
    centre = 0.5 * (lower + upper)
    x = 0.5 * width + (points[..., 0] - centre[:, None, 0]) * scale[:, None]
    y = 0.5 * height - (points[..., 1] - centre[:, None, 1]) * scale[:, None]
    return np.stack([x, y], axis=-1).astype(np.float32), scale.astype(np.float32)
