"""Quadrilaterals: reference geometry, intruders, the property model and its s_gen."""

import numpy as np
import pytest

from alignjax.data import quadrilaterals as q

WORLD = q.QuadrilateralWorld(image_size=32)


def _rotate(v, angle):
    c, s = np.cos(angle), np.sin(angle)
    return v @ np.array([[c, s], [-s, c]])


def test_names_and_order():
    assert q.SHAPE_NAMES[0] == "square" and q.SHAPE_NAMES[-1] == "random"
    assert len(q.SHAPE_NAMES) == 11 == len(q.REFERENCE_SHAPES)
    np.testing.assert_array_equal(q.REFERENCE_SHAPES[:, 0], 0.0)  # fourth vertex at the origin
    np.testing.assert_allclose(q.REFERENCE_SHAPES[1], [[0, 0], [1.5, 0], [1.5, 1], [0, 1]])


def test_reference_geometry():
    shapes = dict(zip(q.SHAPE_NAMES, q.REFERENCE_SHAPES))
    angles = {name: q.interior_angles(v) for name, v in shapes.items()}
    sides = {name: q.side_lengths(v) for name, v in shapes.items()}
    np.testing.assert_allclose(angles["square"], 90.0, atol=1e-9)
    np.testing.assert_allclose(sides["square"], 1.2602, atol=1e-9)
    np.testing.assert_allclose(angles["rectangle"], 90.0, atol=1e-9)
    np.testing.assert_allclose(sides["rectangle"], [1.5, 1.0, 1.5, 1.0])
    np.testing.assert_allclose(sides["rhombus"], 1.3, rtol=1e-4)
    assert np.all(np.abs(angles["rhombus"] - 90) > 40)
    np.testing.assert_allclose(angles["parallelogram"], [60, 120, 60, 120], atol=0.01)
    np.testing.assert_allclose(angles["right_kite"][[0, 2]], 90.0, atol=0.02)
    np.testing.assert_allclose(sides["kite"][[0, 2]], sides["kite"][[1, 3]], rtol=1e-3)
    assert sides["hinge"][0] == pytest.approx(sides["hinge"][2], rel=1e-3)
    assert angles["hinge"][0] == pytest.approx(90.0)
    assert q.is_convex(q.REFERENCE_SHAPES).all()
    np.testing.assert_array_equal(
        q.symmetry_axes(q.REFERENCE_SHAPES), [4, 2, 2, 0, 1, 1, 1, 0, 0, 0, 0]
    )


def test_reference_signatures_are_the_documented_classes():
    np.testing.assert_array_equal(q.signature(q.REFERENCE_SHAPES), q.CLASS_SIGNATURES)
    np.testing.assert_array_equal(q.classify(q.REFERENCE_SHAPES), np.arange(11))
    assert len({tuple(s) for s in q.CLASS_SIGNATURES}) == 11


def test_classification_is_invariant_to_similarity_and_relabelling():
    rng = np.random.default_rng(0)
    v = q.REFERENCE_SHAPES
    moved = _rotate(v, 1.234) * 3.7 + np.array([5.0, -2.0])
    mirrored = v * np.array([-1.0, 1.0])
    relabelled = np.roll(v, 1, axis=1)[:, ::-1]
    for shapes in (moved, mirrored, relabelled):
        np.testing.assert_array_equal(q.classify(shapes), np.arange(11))
    # A non-convex (dart) shape is in no class.
    dart = np.array([[0.0, 0.0], [2.0, 1.0], [0.0, 2.0], [0.7, 1.0]])
    assert q.classify(dart) == -1
    assert q.classify(rng.normal(size=(4, 2))) in range(-1, 11)


def test_intruders_move_one_vertex_by_the_documented_distance():
    moved = q.intruders(q.REFERENCE_SHAPES)
    mean = q.mean_vertex_distance(q.REFERENCE_SHAPES)
    displacement = np.linalg.norm(moved - q.REFERENCE_SHAPES[:, None], axis=-1)
    np.testing.assert_allclose(displacement[..., 2], 0.3 * mean[:, None] * np.ones(4), rtol=1e-9)
    np.testing.assert_array_equal(displacement[..., [0, 1, 3]], 0.0)
    # Directions 0/1 move along the side to vertex 3; 2/3 keep that side's length.
    side = q.REFERENCE_SHAPES[:, 3] - q.REFERENCE_SHAPES[:, 2]
    step = moved[:, :2, 2] - q.REFERENCE_SHAPES[:, None, 2]
    cross = step[..., 0] * side[:, None, 1] - step[..., 1] * side[:, None, 0]
    np.testing.assert_allclose(cross, 0.0, atol=1e-12)
    kept = np.linalg.norm(moved[:, 2:, 3] - moved[:, 2:, 2], axis=-1)
    np.testing.assert_allclose(kept, np.linalg.norm(side, axis=-1)[:, None] * np.ones(2), rtol=1e-9)
    # A square with a moved vertex is no longer a square.
    assert np.all(q.classify(moved[0]) != 0)


def test_property_prior():
    prior = q.property_prior()
    assert prior.sum() == pytest.approx(1.0)
    # p_parallel = (0, 0, 1), p_right = 1, p_equal = 1: only squares.
    np.testing.assert_allclose(q.property_prior((0, 0, 1), 1.0, 1.0), np.eye(11)[0])
    np.testing.assert_allclose(q.property_prior((1, 0, 0), 0.0, 0.0), np.eye(11)[10])


def test_every_class_samples_its_own_signature_with_margins():
    rng = np.random.default_rng(1)
    classes = np.repeat(np.arange(11), 40)
    shapes = WORLD.sample_shapes(rng, classes)
    np.testing.assert_array_equal(q.classify(shapes), classes)
    np.testing.assert_array_equal(
        q.signature(shapes, WORLD.angle_margin, WORLD.ratio_margin), q.CLASS_SIGNATURES[classes]
    )
    angles = q.interior_angles(shapes)
    assert angles.min() >= WORLD.min_angle and angles.max() <= 180 - WORLD.min_angle
    # Constrained classes are less variable: all squares are the same shape.
    square_sides = q.side_lengths(shapes[classes == 0])
    np.testing.assert_allclose(square_sides / square_sides[:, :1], 1.0, atol=1e-12)


def test_exact_s_gen_matches_the_sampler():
    # s_gen = P_same / P_independent. Same-theta pairs (x, y) and independent shapes z
    # from the world's own sampler: P_same(k, k) is the frequency of same pairs in
    # class k, P_independent(k, k) = P(c = k)^2 estimated over all n^2 pairs (x, z).
    rng = np.random.default_rng(2)
    n = 20_000
    theta = WORLD.sample_classes(rng, n)
    x = WORLD.sample_shapes(rng, theta)
    y = WORLD.sample_shapes(rng, theta)
    z = WORLD.sample_shapes(rng, WORLD.sample_classes(rng, n))
    cx, cy, cz = q.classify(x), q.classify(y), q.classify(z)
    np.testing.assert_array_equal(cx, theta)
    np.testing.assert_array_equal(cy, theta)
    p_same = np.bincount(cx, minlength=11) / n
    p_independent = (np.bincount(cx, minlength=11) / n) * (np.bincount(cz, minlength=11) / n)
    estimate = p_same / p_independent
    exact = np.exp(WORLD.class_log_generative_similarity(np.arange(11), np.arange(11)))
    np.testing.assert_allclose(estimate, exact, rtol=0.25)
    # And shape by shape: log s_gen of same pairs is -log pi, of different classes -inf.
    log_s = WORLD.log_generative_similarity(x, y)
    np.testing.assert_allclose(log_s, -np.log(WORLD.prior[theta]), rtol=1e-5)
    assert np.all(WORLD.log_generative_similarity(x, z)[cx != cz] == -np.inf)


def test_class_s_gen_values():
    prior = WORLD.prior
    log_s = WORLD.class_log_generative_similarity(np.array([0, 5, 3, -1]), np.array([0, 5, 4, 2]))
    np.testing.assert_allclose(log_s[:2], -np.log(prior[[0, 5]]), rtol=1e-5)
    assert log_s[2] == -np.inf and np.isnan(log_s[3])
    # Batch shapes broadcast: the [n, m] matrix of classes against classes.
    classes = np.array([0, 5, 3, -1])
    matrix = WORLD.class_log_generative_similarity(classes[:, None], classes[None, :])
    assert matrix.shape == (4, 4)
    np.testing.assert_allclose(np.diag(matrix)[:3], -np.log(prior[[0, 5, 3]]), rtol=1e-6)
    assert np.isnan(matrix[3]).all() and np.all(matrix[0, 1:3] == -np.inf)
    with pytest.raises(ValueError, match="broadcastable"):
        WORLD.class_log_generative_similarity(np.zeros(3, int), np.zeros(2, int))


def test_images_and_determinism():
    a, b, c = (WORLD.sample_triplets(np.random.default_rng(seed), 8) for seed in (5, 5, 6))
    assert a["inputs"].shape == (8, 3, 32, 32, 1) and a["inputs"].dtype == np.float32
    assert (
        a["inputs"].tobytes() == b["inputs"].tobytes()
        and a["labels"].tobytes() == b["labels"].tobytes()
    )
    assert a["inputs"].tobytes() != c["inputs"].tobytes()
    np.testing.assert_array_equal(a["labels"][:, 0], a["labels"][:, 1])
    images = a["inputs"]
    assert images.min() >= 0 and images.max() <= 1 and np.any((images > 0.05) & (images < 0.95))
    # Outlines, not filled: the centroid pixel of a shape is background.
    centre = a["vertices"].mean(axis=2).astype(int)
    values = images[np.arange(8)[:, None], np.arange(3), centre[..., 1], centre[..., 0], 0]
    assert np.mean(values < 0.5) > 0.8
    # All vertices inside the image.
    assert a["vertices"].min() >= 0 and a["vertices"].max() <= 32
    rgb = q.QuadrilateralWorld(image_size=16, channels=3).sample(np.random.default_rng(0), 2)[
        "inputs"
    ]
    assert rgb.shape == (2, 16, 16, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_oddball_trials():
    trials = WORLD.oddball_trials(np.random.default_rng(0), 22)
    assert trials["inputs"].shape == (22, 6, 32, 32, 1)
    np.testing.assert_array_equal(trials["shape"], np.arange(22) % 11)
    classes = q.classify(trials["vertices"])
    is_intruder = np.arange(6)[None, :] == trials["intruder"][:, None]
    # The five references keep their class in any pose; a square's intruder is no square.
    np.testing.assert_array_equal(
        np.where(is_intruder, -2, classes), np.where(is_intruder, -2, trials["shape"][:, None])
    )
    squares = trials["shape"] == 0
    assert np.all(classes[squares][is_intruder[squares]] != 0)
    assert set(trials["intruder"]) <= set(range(6))
    same = WORLD.oddball_trials(np.random.default_rng(0), 22)
    assert same["inputs"].tobytes() == trials["inputs"].tobytes()
    kites = WORLD.oddball_trials(np.random.default_rng(0), 2, ["kite"])
    assert kites["inputs"].shape == (2, 6, 32, 32, 1) and kites["shape"].tolist() == [6, 6]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: q.classify(np.zeros((3, 2))), "vertices must have shape"),
        (lambda: q.intruders(q.REFERENCE_SHAPES[0], vertex=4), "vertex"),
        (lambda: q.property_prior((0.5, 0.5, 0.5)), "p_parallel"),
        (
            lambda: WORLD.oddball_trials(np.random.default_rng(0), 1, ["circle"]),
            "shape must be one of",
        ),
        (lambda: WORLD.sample_shapes(np.random.default_rng(0), [11]), "classes"),
        (lambda: q.QuadrilateralWorld(image_size=4), "image_size"),
        (lambda: q.QuadrilateralWorld(channels=2), "channels"),
        (lambda: q.QuadrilateralWorld(class_weights=(1.0,) * 10), "class_weights"),
        (lambda: q.QuadrilateralWorld(size_range=(0.9, 0.5)), "size_range"),
        (
            lambda: q.QuadrilateralWorld(angle_margin=0.1),
            r"angle_margin=0.1: must be .* \(0.5, 20\)",
        ),
        (lambda: q.QuadrilateralWorld(intruder_fraction=0.0), "intruder_fraction=0.0"),
        (lambda: q.QuadrilateralWorld(max_side_ratio=float("inf")), "max_side_ratio=inf"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
