r"""A probabilistic grammar of Euclidean constructions: concepts as sampled programs.

Marjieh et al. (2024) learn abstract geometric concepts from generative-similarity
triplets of concepts sampled from a probabilistic grammar over Geoclidean programs
(Hsu, Wu and Goodman 2022), and test on constructions never trained on. This module is
that grammar for the language of :mod:`alignjax.data.geoclidean`. A program of ``n``
objects (``n`` uniform in ``[min_objects, max_objects]``) is generated statement by
statement:

- the object is a circle with probability ``circle_probability``, else a line
  (segment); the first object's two points are free;
- each of its two points is, with the probabilities ``point_probabilities``
  ``(free, existing, on, meet)``: a new free point ``p()``; a point already defined
  (``p()``, sharing an endpoint or centre); a new point on an earlier object
  ``p(obj)``; a new intersection of two earlier objects ``p(obj1, obj2)``. A choice
  that is not available (no earlier object, one object only, no unused point) is
  redrawn among those that are. A circle's second point (the one it passes through) is
  never merely on an object: a circle through some point of an object only meets it,
  which shows no constraint;
- a circle other than the last object is a hidden helper (``*``) with probability
  ``hidden_probability``, provided a later point lies on it;
- a statement that repeats an earlier object (the same kind through the same points)
  is redrawn.

A program must carry at least ``min_constraints`` constraints (points on or between
objects; shared points count too), so that the concepts are constructions rather than
loose strokes. Its **close variant** relaxes one constraint, chosen uniformly, as
Geoclidean's close foils do: an intersection ``p(a, b)`` becomes ``p(a)``, a point on an
object becomes free, a shared point becomes a new free point. A sampled concept is kept
only if it and its close variant both have instances (:func:`sample_instance` succeeds
within ``max_tries``); :meth:`ConceptGrammar.sample_concepts` also skips concepts whose
structure (:func:`~alignjax.data.geoclidean.structure_key`) repeats an earlier one or
one of the ``exclude`` programs, e.g. the evaluation concepts and their close variants,
so those stay unseen.

References:
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420.
  Hsu, J., Wu, J. and Goodman, N. D. (2022). Geoclidean: Few-shot generalization in
  Euclidean geometry. NeurIPS Datasets and Benchmarks.

Example:

>>> grammar = ConceptGrammar()
>>> concepts = grammar.sample_concepts(np.random.default_rng(0), 3)
>>> [len(c.program) >= grammar.min_objects for c in concepts]
[True, True, True]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignjax.config import checked, configclass
from alignjax.data.geoclidean import Concept, Program, parse_program, sample_instance, structure_key

#: Point kinds of the grammar, in the order of ``point_probabilities``.
POINT_KINDS: tuple[str, ...] = ("free", "existing", "on", "meet")


@configclass
class ConceptGrammar:
    """A probabilistic grammar over Geoclidean programs (see module doc).

    Attributes:
      min_objects: fewest statements of a program (>= 2).
      max_objects: most statements of a program.
      circle_probability: probability that an object is a circle.
      point_probabilities: ``(free, existing, on, meet)`` probabilities of a point.
      hidden_probability: probability that a circle (not the last object) is a hidden
        construction helper.
      min_constraints: fewest constraints (points on or between objects, shared points)
        of a program (>= 1: the close variant relaxes one).
      min_size: smallest object as a fraction of the figure (see :func:`sample_instance`).
      max_tries: instance attempts before a program counts as unsatisfiable.
    """

    min_objects: int = checked(2, ge=2)
    max_objects: int = checked(4, ge=2)
    circle_probability: float = checked(0.4, ge=0, le=1)
    point_probabilities: tuple[float, float, float, float] = checked((0.3, 0.3, 0.25, 0.15), ge=0)
    hidden_probability: float = checked(0.2, ge=0, le=1)
    min_constraints: int = checked(1, ge=1)
    min_size: float = checked(0.1, gt=0, lt=1)
    max_tries: int = checked(50, ge=1)

    def __post_init__(self):
        if not 2 <= self.min_objects <= self.max_objects:
            raise ValueError(
                "need 2 <= min_objects <= max_objects, "
                f"got {self.min_objects} and {self.max_objects}"
            )
        p = np.asarray(self.point_probabilities, dtype=float)
        if p.shape != (4,) or np.any(p < 0) or not p[0] > 0:
            raise ValueError(
                "point_probabilities must be 4 non-negative numbers (free, existing, on, meet) "
                f"with free > 0, got {self.point_probabilities!r}"
            )
        if not p[1:].sum() > 0:
            raise ValueError(
                "point_probabilities must give some chance to constrained points (existing, on "
                f"or meet), got {self.point_probabilities!r}"
            )
        most = 2 * (self.max_objects - 1)
        if not 1 <= self.min_constraints <= most:
            raise ValueError(
                f"min_constraints must lie in [1, {most}] (the first object's points are free), "
                f"got {self.min_constraints}"
            )

    def sample_program(self, rng: np.random.Generator) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The source lines of one program and of its close variant.

        Programs with fewer than ``min_constraints`` constraints are redrawn; nothing
        here checks that they have instances (see :meth:`sample_concepts`).

        Raises:
          ValueError: if 10000 draws have too few constraints.
        """
        for _ in range(10_000):
            statements, sites = self._statements(rng)
            if len(sites) >= self.min_constraints:
                break
        else:
            raise ValueError(
                "10000 programs of the grammar had fewer than "
                f"min_constraints={self.min_constraints} constraints; lower it or raise the "
                "constrained points' probabilities"
            )
        program = _source(statements)
        site = sites[rng.integers(len(sites))]
        return program, _source(_relax(statements, site))

    def sample_concepts(
        self,
        rng: np.random.Generator,
        n: int,
        exclude: Sequence[Program] = (),
        prefix: str = "grammar",
    ) -> tuple[Concept, ...]:
        """``n`` distinct satisfiable concepts named ``{prefix}_{i}``.

        Args:
          rng: randomness.
          n: number of concepts.
          exclude: programs whose structure must not be sampled (e.g. the test concepts).
          prefix: name prefix.

        Raises:
          ValueError: if ``100 n + 1000`` drawn programs do not yield ``n`` concepts.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        seen = {structure_key(program) for program in exclude}
        concepts: list[Concept] = []
        for _ in range(100 * n + 1000):
            program, close = self.sample_program(rng)
            parsed = parse_program(program)
            key = structure_key(parsed)
            if key in seen:
                continue
            if not (
                self._satisfiable(parsed, rng) and self._satisfiable(parse_program(close), rng)
            ):
                continue
            seen.add(key)
            concepts.append(Concept(f"{prefix}_{len(concepts)}", program, close))
            if len(concepts) == n:
                return tuple(concepts)
        raise ValueError(
            f"the grammar gave only {len(concepts)} of {n} distinct satisfiable concepts; "
            "allow more objects or fewer constraints"
        )

    def _satisfiable(self, program: Program, rng: np.random.Generator) -> bool:
        try:
            sample_instance(program, rng, self.min_size, self.max_tries)
        except ValueError:
            return False
        return True

    def _point(
        self,
        rng: np.random.Generator,
        kind: str,
        slot: int,
        objects: list[str],
        unused: list[str],
        new_name: str,
    ) -> tuple[str, tuple[str, ...]]:
        """One point of a ``kind`` object: ``(name, objects it lies on)``; ``unused``
        are the defined points it may share, ``new_name`` names a new point."""
        # A circle through a point on one object merely meets that object, which shows
        # no constraint, so a circle's through point (slot 1) is never just "on".
        on_allowed = bool(objects) and not (kind == "circle" and slot == 1)
        available = np.array([True, bool(unused), on_allowed, len(objects) >= 2])
        p = np.where(available, np.asarray(self.point_probabilities, dtype=float), 0.0)
        choice = POINT_KINDS[rng.choice(len(POINT_KINDS), p=p / p.sum())]
        if choice == "existing":
            return unused[rng.integers(len(unused))], ()
        if choice == "free":
            return new_name, ()
        chosen = np.sort(rng.choice(len(objects), 2 if choice == "meet" else 1, replace=False))
        return new_name, tuple(objects[i] for i in chosen)

    def _statements(self, rng: np.random.Generator) -> tuple[list[dict], list[tuple[int, int]]]:
        """Statements as dicts, and the constraint sites ``(statement, slot)`` of the program."""
        num_objects = int(rng.integers(self.min_objects, self.max_objects + 1))
        statements: list[dict] = []
        points: list[str] = []
        sites: list[tuple[int, int]] = []
        for index in range(num_objects):
            kind = "circle" if rng.random() < self.circle_probability else "line"
            objects = [s["name"] for s in statements]
            while True:
                first = self._point(rng, kind, 0, objects, points, f"p{len(points) + 1}")
                new_name = f"p{len(points) + 1 + (first[0] not in points)}"
                second = self._point(
                    rng, kind, 1, objects, [p for p in points if p != first[0]], new_name
                )
                ends = (first[0], second[0])
                if not any(
                    s["kind"] == kind and _same_object(kind, s["ends"], ends) for s in statements
                ):
                    break
            count = sum(s["kind"] == kind for s in statements)
            name = f"{'c' if kind == 'circle' else 'l'}{count + 1}"
            for slot, (point, on) in enumerate((first, second)):
                if point in points or on:
                    sites.append((index, slot))
                if point not in points:
                    points.append(point)
            statements.append(
                {
                    "name": name,
                    "kind": kind,
                    "ends": ends,
                    "on": [first[1], second[1]],
                    "hidden": False,
                }
            )
        for statement in statements[:-1]:
            used_later = any(statement["name"] in on for s in statements for on in s["on"])
            if (
                statement["kind"] == "circle"
                and used_later
                and rng.random() < self.hidden_probability
            ):
                statement["hidden"] = True
        return statements, sites


def _same_object(kind: str, a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a == b or (kind == "line" and a == b[::-1])


def _relax(statements: list[dict], site: tuple[int, int]) -> list[dict]:
    """The statements with the constraint at ``site`` relaxed (see module doc)."""
    index, slot = site
    relaxed = [dict(s, ends=list(s["ends"]), on=list(s["on"])) for s in statements]
    statement = relaxed[index]
    on = statement["on"][slot]
    if on:
        statement["on"][slot] = on[:1] if len(on) == 2 else ()
    else:
        names = {p for s in relaxed for p in s["ends"]}
        statement["ends"][slot] = f"p{len(names) + 1}"
    return relaxed


def _source(statements: list[dict]) -> tuple[str, ...]:
    """Geoclidean source lines of the statements (a point's constraint at its first mention)."""
    lines, defined = [], set()
    for s in statements:
        mentions = []
        for point, on in zip(s["ends"], s["on"]):
            mentions.append(f"{point}({', '.join(on) if point not in defined else ''})")
            defined.add(point)
        star = "*" if s["hidden"] else ""
        lines.append(f"{s['name']}{star} = {s['kind']}({mentions[0]}, {mentions[1]})")
    return tuple(lines)
