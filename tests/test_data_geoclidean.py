"""Geoclidean concepts: parsing, constraints of sampled instances, tasks, similarity."""

import numpy as np
import pytest

from alignjax.data import geoclidean as g

WORLD = g.GeoclideanWorld(image_size=32)


def _instances(name, n=20, variant="concept", seed=0):
    return WORLD.sample_instances(np.random.default_rng(seed), name, n, variant)


def _lengths(instance):
    return np.linalg.norm(instance.segments[:, 1] - instance.segments[:, 0], axis=-1)


def test_parse_program():
    program = g.parse_program(
        [
            "l1 = line(p1(), p2())",
            "c1* = circle(p1(), p2())",
            "l2 = line(p2(), p3(l1, c1))",
            "l3 = line(p3(), p4(c1))",
        ]
    )
    assert [s.visible for s in program.statements] == [True, False, True, True]
    assert program.points == {"p1": (), "p2": (), "p3": ("l1", "c1"), "p4": ("c1",)}
    assert program.statements[2] == g.Statement("l2", "line", "p2", "p3", True)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["l1 = segment(p1(), p2())"], "expected 'name"),
        (["l1 = line(p1(c9), p2())"], "used before it is defined"),
        (["c1 = circle(p1(), p2())", "l1 = line(p1(c1), p3())"], "already defined"),
        (["l1 = line(p1(), p1())"], "two different points"),
        (["l1 = line(p1(), p2())", "l1 = line(p3(), p4())"], "already defined"),
        (["l1* = line(p1(), p2())"], "visible"),
        (["l1 = line(p1(), p2(), p3())"], "two points"),
        ([], "non-empty"),
    ],
)
def test_parse_errors(lines, message):
    with pytest.raises(ValueError, match=message):
        g.parse_program(lines)


def test_instances_satisfy_their_constraints():
    for instance in _instances("equilateral_triangle"):
        lengths = _lengths(instance)
        np.testing.assert_allclose(lengths, lengths[0], rtol=1e-9)
        assert len(instance.circles) == 0  # the construction circles are hidden
    for instance in _instances("concentric_circles"):
        np.testing.assert_allclose(instance.circles[0, :2], instance.circles[1, :2])
    for instance in _instances("radius"):
        (cx, cy, r), (start, end) = instance.circles[0], instance.segments[0]
        np.testing.assert_allclose(start, [cx, cy])
        assert np.linalg.norm(end - [cx, cy]) == pytest.approx(r)
    for instance in _instances("perpendicular_bisector"):
        (a, b), (c, d) = instance.segments
        assert np.dot(b - a, d - c) == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(np.linalg.norm((c + d) / 2 - (a + b) / 2), 0.0, atol=1e-9)
    for instance in _instances("rhombus"):
        lengths = _lengths(instance)
        np.testing.assert_allclose(lengths, lengths[0], rtol=1e-9)
    for instance in _instances("circles_through_centres"):
        (x0, y0, r0), (x1, y1, r1) = instance.circles
        assert np.hypot(x1 - x0, y1 - y0) == pytest.approx(r0) == pytest.approx(r1)


def test_close_variants_break_the_constraint():
    for instance in _instances("equilateral_triangle", variant="close"):
        lengths = _lengths(instance)
        assert lengths[0] == pytest.approx(lengths[1])  # still isosceles (p3 on c1) ...
        assert abs(lengths[2] - lengths[0]) > 1e-6  # ... but not equilateral
    radii = [i.circles for i in _instances("concentric_circles", variant="close")]
    assert all(np.linalg.norm(c[0, :2] - c[1, :2]) > 1e-6 for c in radii)


def test_close_variants_change_one_statement():
    for concept in g.CONCEPTS:
        assert len(concept.program) == len(concept.close)
        changed = [a != b for a, b in zip(concept.program, concept.close)]
        assert sum(changed) == 1, concept.name


def test_program_similarity():
    programs = [WORLD.program(k) for k in range(len(g.CONCEPTS))]
    matrix = np.array([[g.program_similarity(a, b) for b in programs] for a in programs])
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)
    assert np.all((matrix >= 0) & (matrix <= 1 + 1e-12))
    # Names do not matter; shared points do (concentric circles are not two circles).
    renamed = g.parse_program(["k = circle(q7(), q2())", "m = line(q7(), q0(k))"])
    assert g.program_similarity(renamed, WORLD.program("radius")) == pytest.approx(1.0)
    assert (
        g.program_similarity(
            WORLD.program("concentric_circles"), WORLD.program("circles_through_centres")
        )
        < 1
    )
    # The equilateral triangle's close variant (apex on one circle only, the other
    # circle unused) draws exactly an isosceles triangle.
    close = WORLD.program("equilateral_triangle", "close")
    assert g.program_similarity(WORLD.program("isosceles_triangle"), close) == pytest.approx(1.0)
    assert g.program_similarity(programs[7], close) < 1
    segment = g.parse_program(["l1 = line(p1(), p2())"])
    circle = g.parse_program(["c1 = circle(p1(), p2())"])
    assert g.program_similarity(segment, circle) == 0.0


def test_few_shot_task():
    task = WORLD.sample_task(np.random.default_rng(0), "chord", num_train=5, num_test=5)
    assert task["train_images"].shape == (5, 32, 32, 1)
    assert task["test_images"].shape == (15, 32, 32, 1)
    np.testing.assert_array_equal(task["test_kinds"], np.repeat([0, 1, 2], 5))
    np.testing.assert_array_equal(task["test_labels"], np.repeat([1, 0, 0], 5))
    assert task["concept"] == 1 and np.all(task["far_concepts"] != 1)
    images = task["test_images"]
    assert images.min() >= 0 and images.max() <= 1 and np.all(images.reshape(15, -1).max(-1) > 0.5)


def test_triplets_and_determinism():
    a, b, c = (WORLD.sample_triplets(np.random.default_rng(seed), 6) for seed in (0, 0, 1))
    assert a["inputs"].shape == (6, 3, 32, 32, 1) and a["inputs"].dtype == np.float32
    assert a["inputs"].tobytes() == b["inputs"].tobytes()
    assert a["inputs"].tobytes() != c["inputs"].tobytes()
    np.testing.assert_array_equal(a["labels"][:, 0], a["labels"][:, 1])
    distinct = g.GeoclideanWorld(image_size=16, distinct_negative=True).sample_triplets(
        np.random.default_rng(0), 30
    )["labels"]
    assert np.all(distinct[:, 2] != distinct[:, 0])


def test_s_gen_matches_the_concept_sampler():
    # s_gen = P_same / P_independent on the concepts drawn by the world's sampler.
    world = g.GeoclideanWorld(weights=tuple(range(1, 11)))
    rng = np.random.default_rng(0)
    n = 50_000
    counts = np.bincount(world.sample_concepts(rng, n), minlength=10) / n
    other = np.bincount(world.sample_concepts(rng, n), minlength=10) / n
    estimate = counts / (counts * other)
    exact = np.exp(world.log_generative_similarity(np.arange(10), np.arange(10)))
    np.testing.assert_allclose(estimate, exact, rtol=0.15)
    assert world.log_generative_similarity(0, 1) == -np.inf


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concepts": g.CONCEPTS[:1]}, "at least 2"),
        ({"concepts": (g.CONCEPTS[0], g.CONCEPTS[0])}, "unique"),
        (
            {
                "concepts": (
                    g.CONCEPTS[0],
                    g.Concept("bad", ("x = line(p1(), p1())",), ("x = line(p1(), p2())",)),
                )
            },
            "bad",
        ),
        ({"weights": (1.0,) * 3}, "weights"),
        ({"channels": 4}, "channels"),
        ({"min_size": 0.0}, r"GeoclideanWorld.min_size=0.0: must be a finite number in \(0, 1\)"),
        ({"image_size": 4}, r"image_size=4: must be an integer >= 8"),
        ({"line_width": float("nan")}, "line_width=nan"),
    ],
)
def test_bad_world(kwargs, message):
    with pytest.raises(ValueError, match=message):
        g.GeoclideanWorld(**kwargs)


def test_unsatisfiable_program_is_reported():
    # Concentric circles of different radii never meet.
    program = g.parse_program(
        ["c1 = circle(p1(), p2())", "c2 = circle(p1(), p3())", "l1 = line(p4(c1, c2), p5())"]
    )
    with pytest.raises(ValueError, match="no valid instance"):
        g.sample_instance(program, np.random.default_rng(0), max_tries=20)
    with pytest.raises(ValueError, match="concept must be one of"):
        WORLD.program("hexagon")
