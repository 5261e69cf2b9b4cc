"""The grammar of Euclidean constructions: programs, close variants, exclusion, errors."""

import numpy as np
import pytest

from alignjax.data import geoclidean as g
from alignjax.data.geoclidean_grammar import ConceptGrammar

GRAMMAR = ConceptGrammar()
TEST_PROGRAMS = [g.parse_program(lines) for c in g.CONCEPTS for lines in (c.program, c.close)]


@pytest.fixture(scope="module")
def concepts():
    return GRAMMAR.sample_concepts(np.random.default_rng(0), 300, exclude=TEST_PROGRAMS)


def _constraints(program):
    """Constraints: one per object a point lies on (two for an intersection), one per
    repeated mention."""
    mentions = [p for s in program.statements for p in (s.first, s.second)]
    return sum(len(on) for on in program.points.values()) + len(mentions) - len(set(mentions))


def test_programs_follow_the_grammar(concepts):
    for concept in concepts:
        program = g.parse_program(concept.program)
        assert GRAMMAR.min_objects <= len(program.statements) <= GRAMMAR.max_objects
        assert _constraints(program) >= GRAMMAR.min_constraints
        first = program.statements[0]
        assert program.points[first.first] == program.points[first.second] == ()
        assert program.statements[-1].visible
        mentioned = set()
        for statement in program.statements:
            if statement.kind == "circle" and statement.second not in mentioned:
                # A circle's through point, defined there, is free or an intersection, never
                # on one object.
                assert len(program.points[statement.second]) != 1, concept.program
            mentioned |= {statement.first, statement.second}
    kinds = {s.kind for c in concepts for s in g.parse_program(c.program).statements}
    assert kinds == {"line", "circle"}
    assert any(not s.visible for c in concepts for s in g.parse_program(c.program).statements)


def test_close_variant_relaxes_one_constraint(concepts):
    for concept in concepts:
        program, close = g.parse_program(concept.program), g.parse_program(concept.close)
        assert len(concept.program) == len(concept.close)
        assert sum(a != b for a, b in zip(concept.program, concept.close)) == 1
        assert _constraints(close) == _constraints(program) - 1, (concept.program, concept.close)
        assert g.structure_key(close) != g.structure_key(program)


def test_concepts_are_distinct_satisfiable_and_skip_the_test_concepts(concepts):
    keys = [g.structure_key(g.parse_program(c.program)) for c in concepts]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {g.structure_key(p) for p in TEST_PROGRAMS}
    # Without the exclusion the grammar does produce some of the test structures.
    free = GRAMMAR.sample_concepts(np.random.default_rng(0), 300)
    assert {g.structure_key(g.parse_program(c.program)) for c in free} & {
        g.structure_key(p) for p in TEST_PROGRAMS
    }
    world = g.GeoclideanWorld(concepts=concepts[:20], image_size=16, line_width=1.0, margin=1.0)
    rng = np.random.default_rng(1)
    for k in range(20):
        for variant in ("concept", "close"):
            assert len(world.sample_instances(rng, k, 2, variant)) == 2
    assert [c.name for c in concepts[:3]] == ["grammar_0", "grammar_1", "grammar_2"]


def test_sampling_is_deterministic():
    a = GRAMMAR.sample_concepts(np.random.default_rng(3), 20)
    b = GRAMMAR.sample_concepts(np.random.default_rng(3), 20)
    c = GRAMMAR.sample_concepts(np.random.default_rng(4), 20)
    assert a == b and a != c


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_objects": 1}, "min_objects"),
        ({"min_objects": 4, "max_objects": 3}, "min_objects"),
        ({"circle_probability": 1.5}, "circle_probability"),
        ({"point_probabilities": (0.0, 1.0, 0.0, 0.0)}, "free > 0"),
        ({"point_probabilities": (1.0, 0.0, 0.0, 0.0)}, "constrained points"),
        ({"min_constraints": 0}, r"ConceptGrammar.min_constraints=0: must be an integer >= 1"),
        ({"min_size": 1.0}, r"min_size=1.0: must be a finite number in \(0, 1\)"),
        ({"hidden_probability": float("nan")}, "hidden_probability=nan"),
        ({"max_objects": 2, "min_constraints": 3}, r"min_constraints must lie in \[1, 2\]"),
        ({"max_tries": 0}, "max_tries"),
    ],
)
def test_bad_grammar(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConceptGrammar(**kwargs)


def test_too_few_distinct_concepts_is_reported():
    # Two segments sharing at most endpoints: a handful of structures, not 50.
    grammar = ConceptGrammar(
        max_objects=2, circle_probability=0.0, point_probabilities=(1.0, 1.0, 0.0, 0.0)
    )
    with pytest.raises(ValueError, match="gave only"):
        grammar.sample_concepts(np.random.default_rng(0), 50)
    with pytest.raises(ValueError, match="n must be"):
        GRAMMAR.sample_concepts(np.random.default_rng(0), 0)
