r"""Quadrilaterals: the shape-regularity world (Sablé-Meyer et al. 2021).

**The reference shapes.** :data:`SHAPE_NAMES` lists the 11 quadrilaterals of the
human and baboon studies in the order of METHODS.md section 2; :data:`REFERENCE_SHAPES`
holds their vertices ``[11, 4, 2]`` in drawing order. The published coordinates give
three vertices ``v1, v2, v3`` with the fourth at the origin; the outline runs
``origin -> v1 -> v3 -> v2``. Rendered as outlines at a random rotation, scale and
position, they make the stimuli of the *oddball* (intruder) task: five renderings of a
reference shape and one *intruder* whose vertex ``v3`` moved by ``0.3`` times the mean
of the six inter-vertex distances, in one of four directions (as in the original
stimulus code): along the side towards its neighbour ``v2`` (away or towards), or
along the circle around ``v2`` (either way), which keeps that side's length.

**A generative model built from geometric properties.** Four properties, measured up
to similarity (rotation, reflection, scale, translation), describe a quadrilateral:

- ``right``: the number of right angles (0, 1, 2 or 4),
- ``parallel``: the number of pairs of parallel opposite sides (0, 1 or 2),
- ``adjacent``: the number of pairs of equal adjacent sides (0 to 4),
- ``opposite``: the number of pairs of equal opposite sides (0, 1 or 2).

Each reference shape is the prototype of one *property class* ``theta``, the set of
quadrilaterals with exactly its signature (:data:`CLASS_SIGNATURES`):

======================  =====  ========  ========  ========  ===============
class                   right  parallel  adjacent  opposite  free parameters
======================  =====  ========  ========  ========  ===============
square                  4      2         4         2         0
rectangle               4      2         0         2         1
rhombus                 0      2         4         2         1
parallelogram           0      2         0         2         2
right_kite              2      0         2         0         1
isosceles_trapezoid     0      1         0         1         2
kite                    0      0         2         0         2
rusted_hinge            0      0         0         1         3
hinge                   1      0         0         1         2
trapezoid               0      1         0         0         3
random                  0      0         0         0         4
======================  =====  ========  ========  ========  ===============

The hierarchical process is ``theta ~ pi``, ``x | theta``: a quadrilateral built to
satisfy ``theta``'s constraints with its free parameters (ratios of sides, angles)
drawn from broad log-uniform and uniform ranges, then accepted only if its signature,
measured with generous *margins* (``angle_margin`` degrees, ``ratio_margin`` in log
length ratio), is exactly ``theta``'s. The margins keep every class a safe distance from
the more constrained classes (a sampled rectangle is never nearly square, a random
shape never nearly a trapezoid), so each class is sharply defined and distinct; then
the shape is reflected with probability 1/2, relabelled cyclically, rotated, scaled,
positioned and rendered. Constrained classes vary in fewer dimensions: all squares are
one shape, rectangles vary along one axis, random shapes along four. An encoder trained
to pull same-``theta`` shapes together and push other classes away must be invariant
within a class and sensitive across class borders. Around a square every displacement
of a vertex leaves the class, so a square's intruder should stand out, while a random
shape's intruder is just another random shape: the regularity effect of the oddball
task. The reference shapes are classified with tight tolerances
(:data:`ANGLE_TOLERANCE`, :data:`RATIO_TOLERANCE`); some lie inside the sampling margins
(the rusted hinge's second side is within 1% of its first), which only means that the
sampled members of a class are more clear-cut than some published prototypes.

The prior ``pi`` is a probabilistic grammar over properties (:func:`property_prior`):
choose the number of parallel pairs (``p_parallel``); a parallelogram adds right angles
with probability ``p_right`` and equal sides with probability ``p_equal``; a trapezoid
adds equal legs with probability ``p_equal``; a quadrilateral without parallel sides
adds a pair of equal sides with probability ``p_equal`` (adjacent, making a kite, or
opposite, making a hinge, with probability 1/2 each) and then a right angle with
probability ``p_right``.

**Exact generative similarity.** The classes have supports of different dimensions
(each a measure-zero set for the less constrained ones), so with probability one a
sampled shape's class is its signature, and the density of same-``theta`` pairs with
respect to independent pairs is

.. math::

    s_{gen}(x, y) = \frac{\sum_\theta \pi_\theta p(x|\theta) p(y|\theta)}{p(x) p(y)}
                  = \frac{[c(x) = c(y)]}{\pi_{c(x)}},

a finite mixture whose responsibilities are one-hot at the class ``c(x)`` found by
:func:`classify`, computed with
:func:`alignjax.data.generative_similarity.mixture_log_generative_similarity`.
Shapes outside every class (e.g. intruders: a square with a moved vertex is a right
trapezoid) have no density under the model and get ``nan``.

References:
  Sablé-Meyer, M. et al. (2021). Sensitivity to geometric shape regularity in humans
  and baboons: a putative signature of human singularity. PNAS 118(16).
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420.

Example:

>>> world = QuadrilateralWorld(image_size=32)
>>> triplets = world.sample_triplets(np.random.default_rng(0), 4)
>>> triplets["inputs"].shape, bool(np.all(triplets["labels"][:, 0] == triplets["labels"][:, 1]))
((4, 3, 32, 32, 1), True)
>>> [SHAPE_NAMES[k] for k in classify(REFERENCE_SHAPES[:3])]
['square', 'rectangle', 'rhombus']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignjax.config import checked, configclass
from alignjax.data import generative_similarity, rendering
from alignjax.data.world import batch_generator

SHAPE_NAMES = (
    "square",
    "rectangle",
    "rhombus",
    "parallelogram",
    "right_kite",
    "isosceles_trapezoid",
    "kite",
    "rusted_hinge",
    "hinge",
    "trapezoid",
    "random",
)

# Published (v1, v2, v3); the fourth vertex is the origin.
_PUBLISHED = (
    ((1.2602, 0.0), (0.0, 1.2602), (1.2602, 1.2602)),
    ((1.5, 0.0), (0.0, 1.0), (1.5, 1.0)),
    ((1.3, 0.0), (0.9076, 0.9306), (2.2076, 0.9306)),
    ((1.5, 0.0), (0.5172, 0.8958), (2.0172, 0.8958)),
    ((1.0376, 0.0), (0.0, 1.5), (1.4035, 0.9709)),
    ((0.7445, 0.0), (-0.3648, 1.3617), (1.1351, 1.3617)),
    ((1.0427, 0.0), (-0.3882, 1.4488), (1.0557, 1.0426)),
    ((1.5, 0.0), (-0.1021, 0.5790), (1.1266, 1.4394)),
    ((1.5, 0.0), (0.0, 0.7), (1.3594, 1.3339)),
    ((0.951, 0.0), (0.227, 1.2), (1.727, 1.2)),
    ((0.7, 0.0), (0.1604, 1.1387), (1.6092, 1.5269)),
)

#: ``float64 [11, 4, 2]``: the reference shapes in drawing order
#: ``(origin, v1, v3, v2)``, counter-clockwise.
REFERENCE_SHAPES = np.array([[(0.0, 0.0), v1, v3, v2] for v1, v2, v3 in _PUBLISHED])
REFERENCE_SHAPES.setflags(write=False)

#: ``int [11, 4]``: each class's signature ``(right, parallel, adjacent, opposite)``.
CLASS_SIGNATURES = np.array(
    [
        (4, 2, 4, 2),
        (4, 2, 0, 2),
        (0, 2, 4, 2),
        (0, 2, 0, 2),
        (2, 0, 2, 0),
        (0, 1, 0, 1),
        (0, 0, 2, 0),
        (0, 0, 0, 1),
        (1, 0, 0, 1),
        (0, 1, 0, 0),
        (0, 0, 0, 0),
    ]
)
CLASS_SIGNATURES.setflags(write=False)

#: Index of the vertex the intruders move (``v3`` of the published coordinates).
INTRUDER_VERTEX = 2

# Classification tolerances. The published coordinates are rounded to 4 decimals: the
# isosceles trapezoid's legs differ by 0.49% and the rusted hinge's first two sides
# (meant to differ) by 0.87%, the kite's angle at v1 is 90.7 degrees (not right), so the
# tolerances sit between those values.
ANGLE_TOLERANCE = 0.5
RATIO_TOLERANCE = 0.0065

_ADJACENT = ((0, 1), (1, 2), (2, 3), (3, 0))
_OPPOSITE = ((0, 2), (1, 3))


def _check_vertices(vertices) -> np.ndarray:
    array = np.asarray(vertices, dtype=np.float64)
    if array.ndim < 2 or array.shape[-2:] != (4, 2):
        raise ValueError(f"vertices must have shape [..., 4, 2], got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("vertices must be finite")
    return array


def _shape_index(shape: int | str) -> int:
    if isinstance(shape, str):
        if shape not in SHAPE_NAMES:
            raise ValueError(f"shape must be one of {SHAPE_NAMES}, got {shape!r}")
        return SHAPE_NAMES.index(shape)
    if not 0 <= int(shape) < len(SHAPE_NAMES):
        raise ValueError(f"shape index must lie in [0, {len(SHAPE_NAMES)}), got {shape}")
    return int(shape)


def side_lengths(vertices) -> np.ndarray:
    """Lengths ``[..., 4]`` of the sides ``V_i V_{i+1}`` of quadrilaterals ``[..., 4, 2]``."""
    vertices = _check_vertices(vertices)
    return np.linalg.norm(np.roll(vertices, -1, axis=-2) - vertices, axis=-1)


def interior_angles(vertices) -> np.ndarray:
    """Angles ``[..., 4]`` in degrees at the vertices of quadrilaterals ``[..., 4, 2]``.

    >>> interior_angles(REFERENCE_SHAPES[0]).round(6).tolist()
    [90.0, 90.0, 90.0, 90.0]
    """
    vertices = _check_vertices(vertices)
    to_prev = np.roll(vertices, 1, axis=-2) - vertices
    to_next = np.roll(vertices, -1, axis=-2) - vertices
    cos = np.sum(to_prev * to_next, axis=-1) / (
        np.linalg.norm(to_prev, axis=-1) * np.linalg.norm(to_next, axis=-1)
    )
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def mean_vertex_distance(vertices) -> np.ndarray:
    """Mean of the six distances between the four vertices, ``[...]``."""
    vertices = _check_vertices(vertices)
    i, j = np.triu_indices(4, k=1)
    return np.linalg.norm(vertices[..., i, :] - vertices[..., j, :], axis=-1).mean(axis=-1)


def is_convex(vertices) -> np.ndarray:
    """Whether each quadrilateral ``[..., 4, 2]`` is strictly convex (either orientation)."""
    vertices = _check_vertices(vertices)
    sides = np.roll(vertices, -1, axis=-2) - vertices
    nxt = np.roll(sides, -1, axis=-2)
    cross = sides[..., 0] * nxt[..., 1] - sides[..., 1] * nxt[..., 0]
    return np.all(cross > 0, axis=-1) | np.all(cross < 0, axis=-1)


def _direction_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between the lines along vectors ``a`` and ``b``, in ``[0, 90]``."""
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    dot = np.sum(a * b, axis=-1)
    return np.degrees(np.arctan2(np.abs(cross), np.abs(dot)))


def symmetry_axes(vertices, tolerance: float = 0.02) -> np.ndarray:
    """Number of mirror-symmetry axes ``[...]`` of quadrilaterals ``[..., 4, 2]``.

    The candidate axes of a quadrilateral are its two diagonals and the two lines
    through the midpoints of opposite sides; an axis counts when reflecting across it
    maps the vertices onto their partners within ``tolerance`` times the mean
    inter-vertex distance.

    >>> symmetry_axes(REFERENCE_SHAPES[:4]).tolist()
    [4, 2, 2, 0]
    """
    vertices = _check_vertices(vertices)
    scale = mean_vertex_distance(vertices)
    count = np.zeros(vertices.shape[:-2], dtype=int)

    def reflect(points, origin, direction):
        direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
        rel = points - origin[..., None, :]
        along = np.sum(rel * direction[..., None, :], axis=-1, keepdims=True)
        return origin[..., None, :] + 2 * along * direction[..., None, :] - rel

    for i in range(2):
        # Diagonal through V_i and V_{i+2} swaps V_{i+1} and V_{i+3}.
        origin, direction = vertices[..., i, :], vertices[..., i + 2, :] - vertices[..., i, :]
        image = reflect(vertices, origin, direction)
        partner = [0, 1, 2, 3]
        partner[i + 1], partner[(i + 3) % 4] = (i + 3) % 4, i + 1
        error = np.linalg.norm(image - vertices[..., partner, :], axis=-1).max(axis=-1)
        count += error <= tolerance * scale
        # Line through the midpoints of sides (i, i+1) and (i+2, i+3) swaps i <-> i+1.
        m1 = 0.5 * (vertices[..., i, :] + vertices[..., i + 1, :])
        m2 = 0.5 * (vertices[..., i + 2, :] + vertices[..., (i + 3) % 4, :])
        image = reflect(vertices, m1, m2 - m1)
        partner = [0, 1, 2, 3]
        partner[i], partner[i + 1] = i + 1, i
        partner[i + 2], partner[(i + 3) % 4] = (i + 3) % 4, i + 2
        error = np.linalg.norm(image - vertices[..., partner, :], axis=-1).max(axis=-1)
        count += error <= tolerance * scale
    return count


def signature(
    vertices, angle_tolerance: float = ANGLE_TOLERANCE, ratio_tolerance: float = RATIO_TOLERANCE
) -> np.ndarray:
    """Property signature ``int [..., 4]``: ``(right, parallel, adjacent, opposite)``.

    A right angle is within ``angle_tolerance`` degrees of 90; two opposite sides are
    parallel within ``angle_tolerance`` degrees; two sides are equal when
    ``|log(l_i / l_j)| <= ratio_tolerance``.

    >>> signature(REFERENCE_SHAPES[4]).tolist()
    [2, 0, 2, 0]
    """
    vertices = _check_vertices(vertices)
    lengths = side_lengths(vertices)
    log_lengths = np.log(np.maximum(lengths, 1e-300))
    sides = np.roll(vertices, -1, axis=-2) - vertices
    right = np.sum(np.abs(interior_angles(vertices) - 90.0) <= angle_tolerance, axis=-1)
    parallel = sum(
        _direction_difference(sides[..., i, :], sides[..., j, :]) <= angle_tolerance
        for i, j in _OPPOSITE
    )

    def equal(pairs):
        return sum(
            np.abs(log_lengths[..., i] - log_lengths[..., j]) <= ratio_tolerance for i, j in pairs
        )

    adjacent, opposite = equal(_ADJACENT), equal(_OPPOSITE)
    return np.stack([right, parallel, adjacent, opposite], axis=-1).astype(int)


def classify(
    vertices, angle_tolerance: float = ANGLE_TOLERANCE, ratio_tolerance: float = RATIO_TOLERANCE
) -> np.ndarray:
    """Property class ``int [...]`` of quadrilaterals ``[..., 4, 2]``; ``-1`` if none.

    A shape belongs to the class whose signature (:data:`CLASS_SIGNATURES`) it has
    exactly; non-convex shapes and signatures of no class (e.g. a right trapezoid)
    give ``-1``.
    """
    vertices = _check_vertices(vertices)
    found = signature(vertices, angle_tolerance, ratio_tolerance)
    match = np.all(found[..., None, :] == CLASS_SIGNATURES, axis=-1)
    label = np.where(match.any(axis=-1), match.argmax(axis=-1), -1)
    return np.where(is_convex(vertices), label, -1)


def intruders(vertices, fraction: float = 0.3, vertex: int = INTRUDER_VERTEX) -> np.ndarray:
    """The four intruders of quadrilaterals ``[..., 4, 2]``: one vertex moved.

    The vertex ``V_i`` (``i = vertex``) moves by ``d = fraction * mean_vertex_distance``
    relative to its next neighbour ``N = V_{i+1}``: direction 0 moves it away from
    ``N`` along their side, 1 towards ``N``, 2 and 3 along the circle around ``N``
    (counter-clockwise and clockwise), keeping ``|V_i N|``. With the default ``vertex``
    this is the original stimulus code (which moves ``v3`` relative to ``v2``).

    Returns:
      ``[..., 4 directions, 4, 2]``.

    >>> moved = intruders(REFERENCE_SHAPES[0])
    >>> np.linalg.norm(moved[:, 2] - REFERENCE_SHAPES[0, 2], axis=-1).round(4).tolist()
    [0.4303, 0.4303, 0.4303, 0.4303]
    """
    vertices = _check_vertices(vertices)
    if not 0 < fraction:
        raise ValueError(f"fraction must be positive, got {fraction}")
    if vertex not in range(4):
        raise ValueError(f"vertex must be 0, 1, 2 or 3, got {vertex}")
    distance = fraction * mean_vertex_distance(vertices)[..., None]
    moving = vertices[..., vertex, :]
    towards = vertices[..., (vertex + 1) % 4, :] - moving
    side = np.linalg.norm(towards, axis=-1, keepdims=True)
    if np.any(distance > 2 * side):
        raise ValueError("fraction too large: the displacement exceeds twice the side length")
    unit = towards / side
    # The chord of length d on the circle of radius |side| around N makes the angle
    # alpha = arccos(d / (2 |side|)) with the direction towards N.
    alpha = np.arccos(distance / (2 * side))
    cos, sin = np.cos(alpha), np.sin(alpha)
    ux, uy = unit[..., 0:1], unit[..., 1:2]
    ccw = np.concatenate([cos * ux - sin * uy, sin * ux + cos * uy], axis=-1)
    cw = np.concatenate([cos * ux + sin * uy, -sin * ux + cos * uy], axis=-1)
    steps = np.stack([-unit, unit, ccw, cw], axis=-2) * distance[..., None]
    out = np.repeat(vertices[..., None, :, :], 4, axis=-3).copy()
    out[..., vertex, :] = moving[..., None, :] + steps
    return out


def property_prior(
    p_parallel: Sequence[float] = (1 / 3, 1 / 3, 1 / 3), p_right: float = 0.5, p_equal: float = 0.5
) -> np.ndarray:
    """Class prior ``pi [11]`` of the probabilistic grammar over properties.

    ``p_parallel`` = probabilities of 0, 1 and 2 pairs of parallel sides. Two pairs
    (parallelograms) add right angles with probability ``p_right`` and equal sides with
    probability ``p_equal`` (square, rectangle, rhombus, parallelogram); one pair adds
    equal legs with probability ``p_equal`` (isosceles trapezoid, trapezoid); none adds
    a pair of equal sides with probability ``p_equal``, adjacent or opposite with
    probability 1/2 (kite, hinge), then a right angle with probability ``p_right``
    (right kite, hinge; otherwise kite, rusted hinge; without equal sides: random).

    >>> (property_prior() * 24).round(6).tolist()
    [2.0, 2.0, 2.0, 2.0, 1.0, 4.0, 1.0, 1.0, 1.0, 4.0, 4.0]
    """
    p0, p1, p2 = (float(p) for p in p_parallel)
    for name, value in (("p_right", p_right), ("p_equal", p_equal)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if min(p0, p1, p2) < 0 or not np.isclose(p0 + p1 + p2, 1.0):
        raise ValueError(
            f"p_parallel must be 3 probabilities summing to 1, got {tuple(p_parallel)}"
        )
    r, e = p_right, p_equal
    weights = np.array(
        [
            p2 * r * e,  # square
            p2 * r * (1 - e),  # rectangle
            p2 * (1 - r) * e,  # rhombus
            p2 * (1 - r) * (1 - e),  # parallelogram
            p0 * e / 2 * r,  # right kite
            p1 * e,  # isosceles trapezoid
            p0 * e / 2 * (1 - r),  # kite
            p0 * e / 2 * (1 - r),  # rusted hinge
            p0 * e / 2 * r,  # hinge
            p1 * (1 - e),  # trapezoid
            p0 * (1 - e),  # random
        ]
    )
    return weights


# Canonical constructions: V0 = (0, 0), V1 = (1, 0); every class's free parameters.
def _log_uniform(rng, n, low=1 / 3, high=3.0):
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _angle(rng, n, low=30.0, high=150.0):
    return np.radians(rng.uniform(low, high, n))


def _polar(radius, angle):
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)


def _reflect_across(point, a, b):
    direction = (b - a) / np.linalg.norm(b - a, axis=-1, keepdims=True)
    rel = point - a
    return a + 2 * np.sum(rel * direction, axis=-1, keepdims=True) * direction - rel


def _assemble(v2, v3):
    n = v2.shape[0]
    v0 = np.zeros((n, 2))
    v1 = np.tile([1.0, 0.0], (n, 1))
    return np.stack([v0, v1, v2, v3], axis=1)


def _construct(shape: int, rng: np.random.Generator, n: int) -> np.ndarray:
    one = np.ones(n)
    if shape == 0:  # square
        return _assemble(np.tile([1.0, 1.0], (n, 1)), np.tile([0.0, 1.0], (n, 1)))
    if shape == 1:  # rectangle: aspect ratio r
        r = _log_uniform(rng, n)
        return _assemble(np.stack([one, r], -1), np.stack([0 * one, r], -1))
    if shape in (2, 3):  # rhombus (r = 1), parallelogram: angle alpha, side ratio r
        alpha = _angle(rng, n)
        r = one if shape == 2 else _log_uniform(rng, n)
        v3 = _polar(r, alpha)
        return _assemble(v3 + [1.0, 0.0], v3)
    if shape in (4, 6):  # right kite (gamma = 90), kite: axis V1 V3, V2 = mirror of V0
        gamma = np.full(n, np.pi / 2) if shape == 4 else _angle(rng, n)
        v3 = _polar(_log_uniform(rng, n), gamma)
        v2 = _reflect_across(np.zeros((n, 2)), np.tile([1.0, 0.0], (n, 1)), v3)
        return _assemble(v2, v3)
    if shape == 5:  # isosceles trapezoid: base angle beta, leg l
        beta, leg = _angle(rng, n), _log_uniform(rng, n)
        v3 = _polar(leg, beta)
        return _assemble(np.stack([1 - v3[:, 0], v3[:, 1]], -1), v3)
    if shape in (7, 8):  # rusted hinge, hinge (alpha = 90): |V2 V3| = |V0 V1| = 1
        alpha = np.full(n, np.pi / 2) if shape == 8 else _angle(rng, n)
        v3 = _polar(_log_uniform(rng, n), alpha)
        return _assemble(v3 + _polar(one, np.radians(rng.uniform(-75, 75, n))), v3)
    if shape == 9:  # trapezoid: V2 V3 parallel to V0 V1
        v3 = _polar(_log_uniform(rng, n), _angle(rng, n))
        return _assemble(v3 + np.stack([_log_uniform(rng, n), 0 * one], -1), v3)
    v3 = _polar(_log_uniform(rng, n), _angle(rng, n))  # random
    return _assemble(v3 + _polar(_log_uniform(rng, n), np.radians(rng.uniform(-75, 75, n))), v3)


@configclass
class QuadrilateralWorld:
    """Quadrilaterals from a property grammar, rendered as outlines (see module doc).

    Attributes:
      image_size: images are ``image_size x image_size``.
      channels: 1 (grayscale) or 3 (the gray value repeated, for RGB encoders).
      line_width: outline width in pixels.
      size_range: range of the shape's circumradius, as a fraction of half the image
        (minus ``margin``); drawn uniformly per rendering.
      margin: pixels kept free at the image border.
      class_weights: prior ``pi`` over the 11 classes (normalised); ``None`` uses
        :func:`property_prior` with its defaults.
      angle_margin: degrees by which sampled shapes stay away from right angles and
        parallel sides their class does not have.
      ratio_margin: log length ratio by which sampled shapes keep sides their class
        does not make equal apart.
      min_angle: interior angles of sampled shapes lie in ``[min_angle, 180 -
        min_angle]`` degrees (no near-degenerate, triangle-like shapes).
      max_side_ratio: largest ratio of the longest to the shortest side.
      intruder_fraction: intruder displacement, in mean inter-vertex distances.
      distinct_negative: draw the triplet negative's class from the prior
        conditioned on differing from the anchor's (default: independent, so that
        with probability ``sum pi^2`` it is the same class).
    """

    image_size: int = checked(64, ge=8)
    channels: int = 1
    line_width: float = 1.5
    size_range: tuple[float, float] = (0.6, 0.95)
    margin: float = 2.0
    class_weights: tuple[float, ...] | None = None
    angle_margin: float = checked(4.0, gt=ANGLE_TOLERANCE, lt=20)
    ratio_margin: float = checked(0.05, gt=RATIO_TOLERANCE, lt=0.5)
    min_angle: float = checked(30.0, ge=0, lt=60)
    max_side_ratio: float = checked(4.0, gt=3)
    intruder_fraction: float = checked(0.3, gt=0, le=0.6)
    distinct_negative: bool = False

    def __post_init__(self):
        if not isinstance(self.image_size, (int, np.integer)):
            raise ValueError(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if not 0 < self.line_width < self.image_size / 4:
            raise ValueError(f"line_width must lie in (0, image_size / 4), got {self.line_width!r}")
        low, high = self.size_range
        if not 0 < low <= high <= 1:
            raise ValueError(
                f"size_range must satisfy 0 < low <= high <= 1, got {self.size_range!r}"
            )
        if not 0 <= self.margin < self.image_size / 4:
            raise ValueError(f"margin must lie in [0, image_size / 4), got {self.margin!r}")
        if self.class_weights is not None:
            weights = np.asarray(self.class_weights, dtype=float)
            if weights.shape != (len(SHAPE_NAMES),) or np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError(
                    f"class_weights must be {len(SHAPE_NAMES)} non-negative numbers with a "
                    f"positive sum, got {self.class_weights!r}"
                )

    @property
    def prior(self) -> np.ndarray:
        """Class prior ``pi [11]``."""
        if self.class_weights is None:
            return property_prior()
        weights = np.asarray(self.class_weights, float)
        return weights / weights.sum()

    def sample_classes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` classes ``theta ~ pi``, ``int [n]``."""
        return rng.choice(len(SHAPE_NAMES), size=n, p=self.prior)

    def _accept(self, shapes: np.ndarray, shape: int) -> np.ndarray:
        angles = interior_angles(shapes)
        lengths = side_lengths(shapes)
        valid = (
            is_convex(shapes)
            & np.all((angles >= self.min_angle) & (angles <= 180.0 - self.min_angle), axis=-1)
            & (lengths.max(-1) <= self.max_side_ratio * lengths.min(-1))
        )
        found = signature(shapes, self.angle_margin, self.ratio_margin)
        return valid & np.all(found == CLASS_SIGNATURES[shape], axis=-1)

    def sample_shapes(self, rng: np.random.Generator, classes) -> np.ndarray:
        """One quadrilateral per class in ``classes`` (``int [n]``), ``float64 [n, 4, 2]``.

        Each shape satisfies its class's constraints and has its signature at the
        world's margins; it is reflected with probability 1/2 and its vertex labels are
        rotated cyclically at random. The frame is canonical (unit first side); poses
        are drawn when rendering.
        """
        classes = np.asarray(classes, dtype=int)
        if classes.ndim != 1 or np.any((classes < 0) | (classes >= len(SHAPE_NAMES))):
            raise ValueError(
                f"classes must be a 1-D array of class indices in [0, 11), got {classes!r}"
            )
        out = np.empty((classes.size, 4, 2))
        for shape in np.unique(classes):
            where = np.flatnonzero(classes == shape)
            accepted, count = [], 0
            while count < where.size:
                candidates = _construct(int(shape), rng, max(16, 4 * (where.size - count)))
                candidates = candidates[self._accept(candidates, int(shape))]
                accepted.append(candidates)
                count += len(candidates)
            out[where] = np.concatenate(accepted)[: where.size]
        mirror = rng.random(classes.size) < 0.5
        out[mirror, :, 0] *= -1
        shift = rng.integers(0, 4, classes.size)
        index = (np.arange(4)[None, :] + shift[:, None]) % 4
        return np.take_along_axis(out, index[..., None], axis=1)

    def sample_poses(self, rng: np.random.Generator, vertices) -> np.ndarray:
        """Places shapes ``[n, 4, 2]`` in the image: pixel vertices ``float32 [n, 4, 2]``.

        The shape is centred on its vertex mean, rotated uniformly, scaled so that its
        circumradius is a uniform fraction (``size_range``) of the half-image, then
        translated uniformly among positions that keep it ``margin`` pixels inside.
        """
        vertices = _check_vertices(vertices)
        if vertices.ndim != 3:
            raise ValueError(f"vertices must have shape [n, 4, 2], got {vertices.shape}")
        n = vertices.shape[0]
        centred = vertices - vertices.mean(axis=1, keepdims=True)
        centred /= np.linalg.norm(centred, axis=-1).max(axis=-1)[:, None, None]
        angle = rng.uniform(0, 2 * np.pi, n)
        cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
        x, y = centred[..., 0], centred[..., 1]
        rotated = np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)
        half = 0.5 * self.image_size - self.margin - self.line_width
        scaled = rotated * (rng.uniform(*self.size_range, n) * half)[:, None, None]
        low = self.margin + self.line_width - scaled.min(axis=1)
        high = self.image_size - self.margin - self.line_width - scaled.max(axis=1)
        offset = low + rng.random((n, 2)) * (high - low)
        return (scaled + offset[:, None, :]).astype(np.float32)

    def render(self, pixel_vertices) -> np.ndarray:
        """Outlines of quadrilaterals ``[n, 4, 2]`` (pixels): ``float32 [n, H, W, C]``."""
        size = self.image_size
        image = rendering.stroke_polygons(pixel_vertices, self.line_width, size, size)
        return np.repeat(image[..., None], self.channels, axis=-1)

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` draws of the generative model.

        Returns:
          ``inputs float32 [n, H, W, C]``, ``labels int [n]`` (classes) and
          ``vertices float32 [n, 4, 2]`` (pixels).
        """
        classes = self.sample_classes(rng, n)
        pixels = self.sample_poses(rng, self.sample_shapes(rng, classes))
        return {"inputs": self.render(pixels), "labels": classes, "vertices": pixels}

    def sample_triplets(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` generative-similarity triplets (anchor, positive, negative).

        Anchor and positive are two shapes of one class ``theta``; the negative's class
        is drawn independently from the prior (it equals ``theta`` with probability
        ``sum_k pi_k^2`` unless ``distinct_negative``). The batch is drawn from
        :func:`batch_generator` of ``rng``.

        Returns:
          ``inputs float32 [n, 3, H, W, C]``, ``labels int [n, 3]``, ``vertices [n, 3, 4, 2]``.
        """
        rng = batch_generator(rng)
        anchor = self.sample_classes(rng, n)
        negative = self.sample_classes(rng, n)
        if self.distinct_negative:
            for i in np.flatnonzero(negative == anchor):
                p = self.prior.copy()
                p[anchor[i]] = 0.0
                negative[i] = rng.choice(len(p), p=p / p.sum())
        classes = np.stack([anchor, anchor, negative], axis=1)
        pixels = self.sample_poses(rng, self.sample_shapes(rng, classes.ravel()))
        size = self.image_size
        return {
            "inputs": self.render(pixels).reshape(n, 3, size, size, self.channels),
            "labels": classes,
            "vertices": pixels.reshape(n, 3, 4, 2),
        }

    def oddball_trials(
        self, rng: np.random.Generator, n: int, shapes: Sequence[int | str] | None = None
    ) -> dict[str, np.ndarray]:
        """``n`` intruder trials: five renderings of a reference shape and one intruder.

        Trial ``i`` uses ``shapes[i % len(shapes)]`` (default all 11). Every rendering
        has its own random rotation, scale and position; the intruder's direction (0-3,
        see :func:`intruders`) and its position among the six are uniform.

        Returns:
          ``inputs float32 [n, 6, H, W, C]``, ``vertices float32 [n, 6, 4, 2]`` (pixels),
          ``intruder int [n]`` (position in 0..5), ``shape int [n]`` (reference index)
          and ``direction int [n]``.
        """
        if shapes is None:
            shapes = range(len(SHAPE_NAMES))
        shapes = np.array([_shape_index(s) for s in shapes], dtype=int)
        if n < 1 or shapes.size == 0:
            raise ValueError(f"n and shapes must be non-empty, got n={n}, shapes={shapes.tolist()}")
        return self._oddball(rng, shapes[np.arange(n) % shapes.size])

    def _oddball(self, rng, shapes: np.ndarray) -> dict[str, np.ndarray]:
        n = shapes.size
        direction = rng.integers(0, 4, n)
        position = rng.integers(0, 6, n)
        moved = intruders(REFERENCE_SHAPES[shapes], self.intruder_fraction)[np.arange(n), direction]
        shapes6 = np.repeat(REFERENCE_SHAPES[shapes][:, None], 6, axis=1)
        shapes6[np.arange(n), position] = moved
        pixels = self.sample_poses(rng, shapes6.reshape(-1, 4, 2))
        size = self.image_size
        return {
            "inputs": self.render(pixels).reshape(n, 6, size, size, self.channels),
            "vertices": pixels.reshape(n, 6, 4, 2),
            "intruder": position,
            "shape": shapes,
            "direction": direction,
        }

    def class_log_generative_similarity(self, class_x, class_y) -> np.ndarray:
        """``log s_gen`` between shapes of classes ``class_x`` and ``class_y``.

        ``-log pi_k`` when both are ``k``, ``-inf`` when they differ, ``nan`` where a
        class is ``-1`` (outside the model's support). The shapes broadcast, so
        ``class_x[:, None]`` and ``class_y[None, :]`` give the ``[n, m]`` matrix.
        """
        class_x, class_y = np.asarray(class_x), np.asarray(class_y)
        try:
            shape = np.broadcast_shapes(class_x.shape, class_y.shape)
        except ValueError:
            raise ValueError(
                "class_x and class_y must have broadcastable shapes, "
                f"got {class_x.shape} and {class_y.shape}"
            ) from None
        class_x, class_y = np.broadcast_to(class_x, shape), np.broadcast_to(class_y, shape)
        k = len(SHAPE_NAMES)
        for name, c in (("class_x", class_x), ("class_y", class_y)):
            if np.any((c < -1) | (c >= k)):
                raise ValueError(f"{name} must hold class indices in [-1, {k}), got {c}")
        log_prior = np.log(self.prior)

        def one_hot_log_likelihood(c):
            return np.where(np.arange(k) == c[..., None], 0.0, -np.inf)

        log_s = np.asarray(
            generative_similarity.mixture_log_generative_similarity(
                one_hot_log_likelihood(class_x), one_hot_log_likelihood(class_y), log_prior
            ),
            dtype=np.float64,
        )
        return np.where((class_x < 0) | (class_y < 0), np.nan, log_s)

    def log_generative_similarity(self, vertices_x, vertices_y) -> np.ndarray:
        """Exact ``log s_gen`` between quadrilaterals ``[..., 4, 2]`` (any pose or frame;
        batch shapes broadcast)."""
        return self.class_log_generative_similarity(classify(vertices_x), classify(vertices_y))
