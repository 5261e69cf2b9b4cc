r"""Geoclidean-like concepts: Euclidean constructions as probabilistic programs.

A small version of the Geoclidean language (Hsu, Wu and Goodman, 2022). A program is
a list of statements, each drawing a line (segment) or a circle through two points::

    l1 = line(p1(), p2())          # segment between two points
    c1* = circle(p1(), p2())       # circle centred at p1 through p2; * = hidden helper
    l2 = line(p1(), p3(c1, c2))    # p3 is an intersection of objects c1 and c2
    l3 = line(p2(), p3())          # a point mentioned again is the same point

A point is defined at its first mention: ``p()`` is free (uniform in the unit square),
``p(obj)`` lies on an earlier object (uniform along a segment or around a circle),
``p(obj1, obj2)`` is an intersection of two earlier objects (uniform among the
intersections that are not already defined points). Sampling an *instance* runs the
program with random free choices; when a constraint has no solution (the objects do
not meet), an object degenerates (shorter than ``min_size`` of the figure) or hides
behind the others (less than half of its outline farther than 3% of the figure from
them: Geoclidean's visibility test), the whole instance is resampled, as in the
original. Visible objects are rendered as
anti-aliased strokes, the figure scaled to fill the image.

:data:`CONCEPTS` holds ten concepts from simple to compound (several from Euclid's
*Elements*, book I), each with a *close* variant that changes one constraint (one
statement), as Geoclidean's test foils do; *far* foils are instances of another
concept. :meth:`GeoclideanWorld.sample_task` makes a few-shot task (5 training
instances; in-concept, close and far test instances).

**Generative similarity.** ``theta`` is a concept drawn from the prior ``pi`` (uniform
by default) and ``x | theta`` an instance. Two programs that differ define
distributions whose supports differ (a close variant relaxes or changes a constraint,
which changes the dimension of the support), so as for the quadrilaterals the
similarity of instances with known concepts is a one-hot mixture,
``s_gen = [c(x) = c(y)] / pi_{c(x)}``; triplets for training take anchor and positive
from one concept and the negative from an independent draw (the Monte Carlo route).
:func:`program_similarity` measures how much *structure* two programs share: each
visible object is expanded into a term (its points replaced by their definitions,
recursively, so names do not matter), and the similarity is the cosine between the
bags of subterms, 1 for identical structure and 0 when nothing is shared.

References:
  Hsu, J., Wu, J. and Goodman, N. D. (2022). Geoclidean: Few-shot generalization in
  Euclidean geometry. NeurIPS Datasets and Benchmarks.
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420.

Example:

>>> program = parse_program(["c1 = circle(p1(), p2())", "l1 = line(p1(), p3(c1))"])
>>> [s.kind for s in program.statements], program.points["p3"]
(['circle', 'line'], ('c1',))
>>> world = GeoclideanWorld(image_size=32)
>>> world.sample_triplets(np.random.default_rng(0), 2)["inputs"].shape
(2, 3, 32, 32, 1)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from alignjax.config import checked, configclass
from alignjax.data import generative_similarity, rendering
from alignjax.data.world import batch_generator

Variant = Literal["concept", "close"]

_STATEMENT = re.compile(r"^\s*([A-Za-z_]\w*)(\*?)\s*=\s*(line|circle)\s*\((.*)\)\s*$")
_POINT = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(([^()]*)\)\s*$")


@dataclasses.dataclass(frozen=True)
class Statement:
    """One object: ``name = kind(first, second)``; hidden objects are not drawn."""

    name: str
    kind: Literal["line", "circle"]
    first: str
    second: str
    visible: bool = True


@dataclasses.dataclass(frozen=True)
class Program:
    """A parsed program: its statements and each point's constraint.

    Attributes:
      statements: the objects in order.
      point_order: the points in order of definition.
      constraints: for each point (in ``point_order``), the objects it lies on: ``()``
        free, ``(obj,)`` on an object, ``(obj1, obj2)`` an intersection.
      source: the program's text, one statement per entry.
    """

    statements: tuple[Statement, ...]
    point_order: tuple[str, ...]
    constraints: tuple[tuple[str, ...], ...]
    source: tuple[str, ...]

    @property
    def points(self) -> dict[str, tuple[str, ...]]:
        """``{point: constraint}``."""
        return dict(zip(self.point_order, self.constraints))


def _split_arguments(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_program(lines: Sequence[str]) -> Program:
    """Parses Geoclidean statements (see module doc) into a :class:`Program`.

    Raises:
      ValueError: naming the statement, for syntax errors, objects used before they
        are defined, points redefined, or objects defined twice.
    """
    if isinstance(lines, str) or not lines:
        raise ValueError(f"lines must be a non-empty sequence of statements, got {lines!r}")
    statements: list[Statement] = []
    objects: set[str] = set()
    constraints: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(lines):
        match = _STATEMENT.match(line)
        where = f"statement {number} ({line!r})"
        if not match:
            raise ValueError(f"{where}: expected 'name[*] = line|circle(p(...), p(...))'")
        name, star, kind, arguments = match.groups()
        if name in objects:
            raise ValueError(f"{where}: object {name!r} is already defined")
        points = _split_arguments(arguments)
        if len(points) != 2:
            raise ValueError(f"{where}: {kind} takes two points, got {len(points)}")
        names = []
        for text in points:
            point = _POINT.match(text)
            if not point:
                raise ValueError(
                    f"{where}: expected a point 'p()', 'p(obj)' or 'p(obj1, obj2)', got {text!r}"
                )
            point_name, inner = point.groups()
            on = tuple(o.strip() for o in inner.split(",")) if inner.strip() else ()
            if len(on) > 2:
                raise ValueError(f"{where}: a point lies on at most two objects, got {text!r}")
            for obj in on:
                if obj not in objects:
                    raise ValueError(f"{where}: object {obj!r} is used before it is defined")
            if len(on) == 2 and on[0] == on[1]:
                raise ValueError(
                    f"{where}: an intersection needs two different objects, got {text!r}"
                )
            if point_name in constraints:
                if on:
                    raise ValueError(
                        f"{where}: point {point_name!r} is already defined; "
                        f"mention it as {point_name}()"
                    )
            else:
                constraints[point_name] = on
            names.append(point_name)
        if names[0] == names[1]:
            raise ValueError(f"{where}: a {kind} needs two different points")
        statements.append(Statement(name, kind, names[0], names[1], visible=not star))
        objects.add(name)
    if not any(s.visible for s in statements):
        raise ValueError("a program must draw at least one visible object")
    return Program(
        tuple(statements),
        tuple(constraints),
        tuple(constraints.values()),
        tuple(str(s).strip() for s in lines),
    )


def _terms(program: Program) -> collections.Counter:
    """Bag of the compound subterms of the visible objects' expanded terms.

    Free points are renamed ``f0, f1, ...`` in order of definition, so that programs
    differing only in names expand to the same terms while a point shared by two
    objects stays recognisable (concentric circles are not two unrelated circles).
    """
    statements = {s.name: s for s in program.statements}
    free_points = [p for p in program.point_order if not program.points[p]]
    free = {p: f"f{i}" for i, p in enumerate(free_points)}
    bag: collections.Counter = collections.Counter()

    def point_term(name):
        on = program.points[name]
        if not on:
            return free[name]
        if len(on) == 1:
            term = f"on({object_term(on[0])})"
        else:
            term = "meet(" + ",".join(sorted(object_term(o) for o in on)) + ")"
        bag[term] += 1
        return term

    def object_term(name):
        s = statements[name]
        a, b = point_term(s.first), point_term(s.second)
        term = f"line({','.join(sorted((a, b)))})" if s.kind == "line" else f"circle({a},{b})"
        bag[term] += 1
        return term

    for s in program.statements:
        if s.visible:
            object_term(s.name)
    return bag


def structure_key(program: Program) -> tuple[tuple[str, int], ...]:
    """A hashable key shared by programs of the same structure (the same bag of subterms).

    Programs with equal keys have :func:`program_similarity` 1, whatever their names.

    >>> a = parse_program(["c1 = circle(p1(), p2())", "l1 = line(p1(), p3(c1))"])
    >>> b = parse_program(["c7 = circle(q1(), q2())", "l3 = line(q1(), q9(c7))"])
    >>> structure_key(a) == structure_key(b)
    True
    """
    return tuple(sorted(_terms(program).items()))


def program_similarity(a: Program, b: Program) -> float:
    """Shared structure of two programs in ``[0, 1]`` (cosine of subterm bags).

    Each visible object expands into a term, its points replaced by their
    definitions (``on(obj)``, ``meet(obj1, obj2)``; free points by their order of
    definition); the similarity is the cosine between the two programs' counts of
    compound subterms: 1 for the same structure, 0 when no subterm is shared.

    >>> radius = parse_program(["c1 = circle(p1(), p2())", "l1 = line(p1(), p3(c1))"])
    >>> free_end = parse_program(["c1 = circle(p1(), p2())", "l1 = line(p1(), p3())"])
    >>> program_similarity(radius, radius), round(program_similarity(radius, free_end), 3)
    (1.0, 0.577)
    """
    ta, tb = _terms(a), _terms(b)
    dot = sum(count * tb[term] for term, count in ta.items())
    norm = math.sqrt(sum(c * c for c in ta.values()) * sum(c * c for c in tb.values()))
    return dot / norm


@dataclasses.dataclass(frozen=True)
class Concept:
    """A named concept and its close variant (one statement changed)."""

    name: str
    program: tuple[str, ...]
    close: tuple[str, ...]


#: Ten concepts, from simple to compound.
CONCEPTS: tuple[Concept, ...] = (
    Concept(
        "radius",
        ("c1 = circle(p1(), p2())", "l1 = line(p1(), p3(c1))"),
        ("c1 = circle(p1(), p2())", "l1 = line(p1(), p3())"),
    ),
    Concept(
        "chord",
        ("c1 = circle(p1(), p2())", "l1 = line(p3(c1), p4(c1))"),
        ("c1 = circle(p1(), p2())", "l1 = line(p3(c1), p4())"),
    ),
    Concept(
        "concentric_circles",
        ("c1 = circle(p1(), p2())", "c2 = circle(p1(), p3())"),
        ("c1 = circle(p1(), p2())", "c2 = circle(p4(), p3())"),
    ),
    Concept(
        "circles_through_centres",
        ("c1 = circle(p1(), p2())", "c2 = circle(p2(), p1())"),
        ("c1 = circle(p1(), p2())", "c2 = circle(p2(), p3())"),
    ),
    Concept(
        "common_chord",
        ("c1 = circle(p1(), p2())", "c2 = circle(p3(), p4())", "l1 = line(p5(c1, c2), p6(c1, c2))"),
        ("c1 = circle(p1(), p2())", "c2 = circle(p3(), p4())", "l1 = line(p5(c1, c2), p6(c2))"),
    ),
    Concept(
        "isosceles_triangle",
        (
            "c1* = circle(p1(), p2())",
            "l1 = line(p1(), p2())",
            "l2 = line(p1(), p3(c1))",
            "l3 = line(p2(), p3())",
        ),
        (
            "c1* = circle(p1(), p2())",
            "l1 = line(p1(), p2())",
            "l2 = line(p1(), p3())",
            "l3 = line(p2(), p3())",
        ),
    ),
    Concept(
        "inscribed_triangle",
        (
            "c1 = circle(p1(), p2())",
            "l1 = line(p3(c1), p4(c1))",
            "l2 = line(p4(), p5(c1))",
            "l3 = line(p5(), p3())",
        ),
        (
            "c1 = circle(p1(), p2())",
            "l1 = line(p3(c1), p4(c1))",
            "l2 = line(p4(), p5())",
            "l3 = line(p5(), p3())",
        ),
    ),
    Concept(
        "equilateral_triangle",
        (
            "l1 = line(p1(), p2())",
            "c1* = circle(p1(), p2())",
            "c2* = circle(p2(), p1())",
            "l2 = line(p1(), p3(c1, c2))",
            "l3 = line(p2(), p3())",
        ),
        (
            "l1 = line(p1(), p2())",
            "c1* = circle(p1(), p2())",
            "c2* = circle(p2(), p1())",
            "l2 = line(p1(), p3(c1))",
            "l3 = line(p2(), p3())",
        ),
    ),
    Concept(
        "perpendicular_bisector",
        (
            "l1 = line(p1(), p2())",
            "c1* = circle(p1(), p2())",
            "c2* = circle(p2(), p1())",
            "l2 = line(p3(c1, c2), p4(c1, c2))",
        ),
        (
            "l1 = line(p1(), p2())",
            "c1* = circle(p1(), p2())",
            "c2* = circle(p2(), p1())",
            "l2 = line(p3(c1, c2), p4(c1))",
        ),
    ),
    Concept(
        "rhombus",
        (
            "c1* = circle(p1(), p2())",
            "c2* = circle(p2(), p1())",
            "l1 = line(p1(), p3(c1, c2))",
            "l2 = line(p3(), p2())",
            "l3 = line(p2(), p4(c1, c2))",
            "l4 = line(p4(), p1())",
        ),
        (
            "c1* = circle(p1(), p2())",
            "c2* = circle(p2(), p1())",
            "l1 = line(p1(), p3(c1, c2))",
            "l2 = line(p3(), p2())",
            "l3 = line(p2(), p4(c2))",
            "l4 = line(p4(), p1())",
        ),
    ),
)

CONCEPT_NAMES: tuple[str, ...] = tuple(c.name for c in CONCEPTS)


def _intersections(a, b) -> list[np.ndarray]:
    """Intersection points of two objects ``("line", p, q)`` / ``("circle", c, r)``."""
    if a[0] == "circle" and b[0] == "line":
        a, b = b, a
    if a[0] == "line" and b[0] == "line":
        p, r = a[1], a[2] - a[1]
        q, s = b[1], b[2] - b[1]
        denominator = r[0] * s[1] - r[1] * s[0]
        if abs(denominator) < 1e-12:
            return []
        t = ((q[0] - p[0]) * s[1] - (q[1] - p[1]) * s[0]) / denominator
        u = ((q[0] - p[0]) * r[1] - (q[1] - p[1]) * r[0]) / denominator
        return [p + t * r] if 0 <= t <= 1 and 0 <= u <= 1 else []
    if a[0] == "line":
        p, d = a[1], a[2] - a[1]
        centre, radius = b[1], b[2]
        f = p - centre
        qa, qb, qc = d @ d, 2 * f @ d, f @ f - radius * radius
        disc = qb * qb - 4 * qa * qc
        if disc < 0 or qa == 0:
            return []
        roots = {(-qb - math.sqrt(disc)) / (2 * qa), (-qb + math.sqrt(disc)) / (2 * qa)}
        return [p + t * d for t in sorted(roots) if 0 <= t <= 1]
    (c0, r0), (c1, r1) = (a[1], a[2]), (b[1], b[2])
    delta = c1 - c0
    distance = math.hypot(*delta)
    if distance == 0 or distance > r0 + r1 or distance < abs(r0 - r1):
        return []
    along = (r0 * r0 - r1 * r1 + distance * distance) / (2 * distance)
    height = math.sqrt(max(r0 * r0 - along * along, 0.0))
    base = c0 + along * delta / distance
    normal = np.array([-delta[1], delta[0]]) / distance
    return [base + height * normal, base - height * normal]


@dataclasses.dataclass(frozen=True, eq=False)
class Instance:
    """A sampled figure: visible segments ``[m, 2, 2]`` and circles ``[c, 3]`` (x, y, r)."""

    segments: np.ndarray
    circles: np.ndarray


def sample_instance(
    program: Program, rng: np.random.Generator, min_size: float = 0.1, max_tries: int = 1000
) -> Instance:
    """Runs ``program`` with random free choices, resampling failed attempts.

    Args:
      program: the concept.
      rng: randomness.
      min_size: smallest segment length and circle diameter, as a fraction of the
        figure's extent (smaller objects make a failed attempt).
      max_tries: attempts before giving up.

    Raises:
      ValueError: if no attempt in ``max_tries`` succeeds.
    """
    for _ in range(max_tries):
        instance = _attempt(program, rng, min_size)
        if instance is not None:
            return instance
    raise ValueError(f"no valid instance of program {list(program.source)} in {max_tries} tries")


def _attempt(program: Program, rng: np.random.Generator, min_size: float) -> Instance | None:
    points: dict[str, np.ndarray] = {}
    objects: dict[str, tuple] = {}
    for statement in program.statements:
        for name in (statement.first, statement.second):
            if name in points:
                continue
            on = program.points[name]
            if not on:
                point = rng.random(2)
            elif len(on) == 1:
                obj = objects[on[0]]
                if obj[0] == "line":
                    point = obj[1] + rng.random() * (obj[2] - obj[1])
                else:
                    angle = rng.uniform(0, 2 * np.pi)
                    point = obj[1] + obj[2] * np.array([np.cos(angle), np.sin(angle)])
            else:
                candidates = [
                    c
                    for c in _intersections(objects[on[0]], objects[on[1]])
                    if all(np.linalg.norm(c - p) > 1e-6 for p in points.values())
                ]
                if not candidates:
                    return None
                point = candidates[rng.integers(len(candidates))]
            points[name] = point
        first, second = points[statement.first], points[statement.second]
        if statement.kind == "line":
            objects[statement.name] = ("line", first, second)
        else:
            objects[statement.name] = ("circle", first, float(np.linalg.norm(second - first)))
    visible = [objects[s.name] for s in program.statements if s.visible]
    segments = np.array([[o[1], o[2]] for o in visible if o[0] == "line"]).reshape(-1, 2, 2)
    circles = np.array([[*o[1], o[2]] for o in visible if o[0] == "circle"]).reshape(-1, 3)
    lower, upper = _bounds(segments, circles)
    extent = float(np.max(upper - lower))
    lengths = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=-1)
    if np.any(lengths < min_size * extent) or np.any(2 * circles[:, 2] < min_size * extent):
        return None
    if not _distinguishable(visible, 0.03 * extent):
        return None
    return Instance(segments, circles)


def _outline_points(obj, count: int = 32) -> np.ndarray:
    t = (np.arange(count) + 0.5) / count
    if obj[0] == "line":
        return obj[1] + t[:, None] * (obj[2] - obj[1])
    return obj[1] + obj[2] * np.stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)], axis=-1)


def _distance_to(points: np.ndarray, obj) -> np.ndarray:
    if obj[0] == "circle":
        return np.abs(np.linalg.norm(points - obj[1], axis=-1) - obj[2])
    a, d = obj[1], obj[2] - obj[1]
    t = np.clip((points - a) @ d / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - a - t[:, None] * d, axis=-1)


def _distinguishable(visible: list, tolerance: float, min_free: float = 0.5) -> bool:
    """Whether every visible object has most of its outline away from the others.

    A stand-in for Geoclidean's pixel-based visibility test: an object whose outline
    lies within ``tolerance`` of other objects for more than ``1 - min_free`` of its
    length (a chord hugging its circle, nearly equal concentric circles) would not be
    seen, so the instance is resampled.
    """
    for i, obj in enumerate(visible):
        others = visible[:i] + visible[i + 1 :]
        if not others:
            continue
        points = _outline_points(obj)
        distance = np.min([_distance_to(points, other) for other in others], axis=0)
        if np.mean(distance > tolerance) < min_free:
            return False
    return True


def _bounds(segments: np.ndarray, circles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centres, radii = circles[:, :2], circles[:, 2:]
    stacked = np.concatenate([segments.reshape(-1, 2), centres - radii, centres + radii])
    return stacked.min(axis=0), stacked.max(axis=0)


@configclass
class GeoclideanWorld:
    """Concepts as programs, rendered as line drawings (see module doc).

    Attributes:
      concepts: the concept library (default :data:`CONCEPTS`).
      weights: prior ``pi`` over the concepts (normalised); ``None`` is uniform.
      image_size: images are ``image_size x image_size``.
      channels: 1 (grayscale) or 3 (repeated).
      line_width: stroke width in pixels.
      margin: pixels kept free at the border.
      min_size: smallest object, as a fraction of the figure (see
        :func:`sample_instance`).
      distinct_negative: draw the triplet negative's concept conditioned on differing
        from the anchor's (default: independent, equal with probability
        ``sum pi^2``).
    """

    concepts: tuple[Concept, ...] = CONCEPTS
    weights: tuple[float, ...] | None = None
    image_size: int = checked(64, ge=8)
    channels: int = 1
    line_width: float = 1.5
    margin: float = 3.0
    min_size: float = checked(0.1, gt=0, lt=1)
    distinct_negative: bool = False

    def __post_init__(self):
        if len(self.concepts) < 2:
            raise ValueError(f"concepts must hold at least 2 concepts, got {len(self.concepts)}")
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            raise ValueError(f"concept names must be unique, got {names}")
        _ = self._programs  # parses every program once, raising on the first bad one
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=float)
            if w.shape != (len(self.concepts),) or np.any(~(w > 0)):
                raise ValueError(
                    f"weights must be {len(self.concepts)} positive numbers, got {self.weights!r}"
                )
        if not isinstance(self.image_size, (int, np.integer)):
            raise ValueError(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if not 0 < self.line_width < self.image_size / 4:
            raise ValueError(f"line_width must lie in (0, image_size / 4), got {self.line_width!r}")
        if not 0 <= self.margin < self.image_size / 4:
            raise ValueError(f"margin must lie in [0, image_size / 4), got {self.margin!r}")

    @property
    def prior(self) -> np.ndarray:
        """Concept prior ``pi [num_concepts]``."""
        k = len(self.concepts)
        w = np.ones(k) if self.weights is None else np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def program(self, concept: int | str, variant: Variant = "concept") -> Program:
        """The parsed program of a concept (by index or name) or of its close variant."""
        index = self.concept_index(concept)
        if variant not in ("concept", "close"):
            raise ValueError(f"variant must be 'concept' or 'close', got {variant!r}")
        return self._programs[index][0 if variant == "concept" else 1]

    @functools.cached_property
    def _programs(self) -> tuple[tuple[Program, Program], ...]:
        """Each concept's parsed program and close variant, parsed once.

        Raises:
          ValueError: naming the concept and variant of a program that does not parse.
        """

        def parse(concept: Concept, label: str, lines: Sequence[str]) -> Program:
            try:
                return parse_program(lines)
            except ValueError as error:
                raise ValueError(f"concept {concept.name!r} {label}: {error}") from None

        return tuple(
            (parse(c, "program", c.program), parse(c, "close", c.close)) for c in self.concepts
        )

    def concept_index(self, concept: int | str) -> int:
        """Index of a concept given by name or index."""
        if isinstance(concept, str):
            names = [c.name for c in self.concepts]
            if concept not in names:
                raise ValueError(f"concept must be one of {names}, got {concept!r}")
            return names.index(concept)
        if not 0 <= int(concept) < len(self.concepts):
            raise ValueError(f"concept index must lie in [0, {len(self.concepts)}), got {concept}")
        return int(concept)

    def sample_concepts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` concepts ``theta ~ pi``, ``int [n]``."""
        return rng.choice(len(self.concepts), size=n, p=self.prior)

    def render(self, instances: Sequence[Instance]) -> np.ndarray:
        """Draws instances: ``float32 [n, H, W, C]``, each figure fitted to the image."""
        n, size = len(instances), self.image_size
        m = max(1, max(len(i.segments) for i in instances))
        c = max(1, max(len(i.circles) for i in instances))
        segments = np.zeros((n, m, 2, 2))
        circles = np.zeros((n, c, 3))
        segment_mask = np.zeros((n, m), dtype=bool)
        circle_mask = np.zeros((n, c), dtype=bool)
        lower, upper = np.zeros((n, 2)), np.zeros((n, 2))
        for k, instance in enumerate(instances):
            segments[k, : len(instance.segments)] = instance.segments
            circles[k, : len(instance.circles)] = instance.circles
            segment_mask[k, : len(instance.segments)] = True
            circle_mask[k, : len(instance.circles)] = True
            lower[k], upper[k] = _bounds(instance.segments, instance.circles)
        margin = self.margin + self.line_width
        pixels, scale = rendering.fit_to_canvas(
            np.concatenate([segments.reshape(n, 2 * m, 2), circles[..., :2]], axis=1),
            size,
            size,
            margin=margin,
            lower=lower,
            upper=upper,
        )
        ends = pixels[:, : 2 * m].reshape(n, m, 2, 2)
        image = rendering.stroke_segments(
            ends[:, :, 0], ends[:, :, 1], self.line_width, size, size, mask=segment_mask
        )
        if circle_mask.any():
            rings = rendering.stroke_circles(
                pixels[:, 2 * m :],
                circles[..., 2] * scale[:, None],
                self.line_width,
                size,
                size,
                mask=circle_mask,
            )
            image = np.maximum(image, rings)
        return np.repeat(image[..., None], self.channels, axis=-1)

    def sample_instances(
        self, rng: np.random.Generator, concept: int | str, n: int, variant: Variant = "concept"
    ) -> list[Instance]:
        """``n`` instances of a concept (or of its close variant)."""
        program = self.program(concept, variant)
        return [sample_instance(program, rng, self.min_size) for _ in range(n)]

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` instances of concepts drawn from the prior.

        Returns:
          ``inputs float32 [n, H, W, C]``, ``labels int [n]`` (concept indices).
        """
        labels = self.sample_concepts(rng, n)
        instances = [sample_instance(self.program(k), rng, self.min_size) for k in labels]
        return {"inputs": self.render(instances), "labels": labels}

    def sample_triplets(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` generative-similarity triplets (anchor, positive, negative).

        Anchor and positive are instances of one concept; the negative's concept is
        drawn independently from the prior (it may be the same) unless
        ``distinct_negative``. The batch is drawn from :func:`batch_generator` of ``rng``.

        Returns:
          ``inputs float32 [n, 3, H, W, C]``, ``labels int [n, 3]`` (concept indices).
        """
        rng = batch_generator(rng)
        k = len(self.concepts)
        anchor = self.sample_concepts(rng, n)
        negative = self.sample_concepts(rng, n)
        if self.distinct_negative:
            for i in np.flatnonzero(negative == anchor):
                p = self.prior.copy()
                p[anchor[i]] = 0.0
                negative[i] = rng.choice(k, p=p / p.sum())
        labels = np.stack([anchor, anchor, negative], axis=1)
        instances = [sample_instance(self.program(c), rng, self.min_size) for c in labels.ravel()]
        size = self.image_size
        return {
            "inputs": self.render(instances).reshape(n, 3, size, size, self.channels),
            "labels": labels,
        }

    def sample_task(
        self,
        rng: np.random.Generator,
        concept: int | str,
        num_train: int = 5,
        num_test: int = 5,
    ) -> dict[str, np.ndarray]:
        """A few-shot task: training instances, then in-concept, close and far tests.

        Far instances come from concepts other than ``concept``, each drawn uniformly.

        Returns:
          ``train_images [num_train, H, W, C]``, ``test_images [3 * num_test, H, W,
          C]`` (in-concept, then close, then far), ``test_labels [3 * num_test]`` (1
          for in-concept), ``test_kinds [3 * num_test]`` (0 in, 1 close, 2 far),
          ``concept`` and ``far_concepts [num_test]``.
        """
        index = self.concept_index(concept)
        if num_train < 1 or num_test < 1:
            raise ValueError(
                f"num_train and num_test must be positive, got {num_train} and {num_test}"
            )
        train = self.sample_instances(rng, index, num_train)
        inside = self.sample_instances(rng, index, num_test)
        close = self.sample_instances(rng, index, num_test, variant="close")
        others = np.array([k for k in range(len(self.concepts)) if k != index])
        far_concepts = others[rng.integers(0, others.size, num_test)]
        far = [sample_instance(self.program(int(k)), rng, self.min_size) for k in far_concepts]
        kinds = np.repeat(np.arange(3), num_test)
        return {
            "train_images": self.render(train),
            "test_images": self.render(inside + close + far),
            "test_labels": (kinds == 0).astype(int),
            "test_kinds": kinds,
            "concept": np.int64(index),
            "far_concepts": far_concepts,
        }

    def log_generative_similarity(self, concept_x, concept_y) -> np.ndarray:
        """``log s_gen`` of instances of concepts ``concept_x``, ``concept_y`` (``int [...]``).

        ``-log pi_k`` for the same concept ``k``, ``-inf`` for different concepts.
        """
        k = len(self.concepts)
        concept_x, concept_y = np.asarray(concept_x), np.asarray(concept_y)
        for name, c in (("concept_x", concept_x), ("concept_y", concept_y)):
            if np.any((c < 0) | (c >= k)):
                raise ValueError(f"{name} must hold concept indices in [0, {k}), got {c}")

        def one_hot_log_likelihood(c):
            return np.where(np.arange(k) == c[..., None], 0.0, -np.inf).astype(np.float32)

        return np.asarray(
            generative_similarity.mixture_log_generative_similarity(
                one_hot_log_likelihood(concept_x),
                one_hot_log_likelihood(concept_y),
                np.log(self.prior).astype(np.float32),
            )
        )
