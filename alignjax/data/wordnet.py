"""The WordNet noun hierarchy as a category tree for the hierarchy world.

:func:`wordnet_tree` returns a :class:`~alignjax.data.hierarchy.Tree` that
:class:`~alignjax.data.hierarchy.HierarchyWorld` takes as its ``tree``.

Reads the WordNet 3.0 database files (``data.noun``, ``index.noun``) of the Debian
package ``wordnet-base`` (``/usr/share/wordnet/``), or any directory holding them:
synsets are found by their byte offset in ``data.noun`` (the database's own index), and
their hyponym pointers (``~``, and ``~i`` for instances if asked) give the children.
WordNet is a directed acyclic graph (a few synsets have two hypernyms); the tree keeps
each synset at its first, shallowest placement in breadth-first order.

Nodes are named like NLTK synsets, ``lemma.n.NN`` with the sense number from
``index.noun``: ``dog.n.01`` is the first noun sense of "dog".

Example (skipped where WordNet is not installed):

>>> tree = wordnet_tree(["dog.n.01"], max_depth=1)  # doctest: +SKIP
>>> tree.names[:3]  # doctest: +SKIP
('dog.n.01', 'puppy.n.01', 'pooch.n.01')

References:
  Miller, G. A. (1995). WordNet: a lexical database for English. Communications of
  the ACM 38(11). Marjieh et al. (2024), section 3.3, build their hierarchy on it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import pathlib
from collections.abc import Sequence

from alignjax.data.hierarchy import Tree

WORDNET_DIR = pathlib.Path("/usr/share/wordnet")


@dataclasses.dataclass(frozen=True)
class Synset:
    """One noun synset of ``data.noun``."""

    offset: int
    words: tuple[str, ...]
    hypernyms: tuple[int, ...]
    hyponyms: tuple[int, ...]
    instance_hyponyms: tuple[int, ...]
    gloss: str


def _file(directory: str | pathlib.Path | None, name: str) -> pathlib.Path:
    path = pathlib.Path(WORDNET_DIR if directory is None else directory) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"WordNet file {path} not found: install the Debian package wordnet-base "
            "(apt-get install wordnet-base) or pass the directory holding data.noun and index.noun"
        )
    return path


def read_synset(offset: int, directory: str | pathlib.Path | None = None) -> Synset:
    """The noun synset at byte ``offset`` of ``data.noun``.

    Raises:
      FileNotFoundError: if ``data.noun`` is missing.
      ValueError: if no synset starts at ``offset``.
    """
    path = _file(directory, "data.noun")
    with path.open("rb") as f:
        f.seek(int(offset))
        line = f.readline().decode("utf-8", errors="replace")
    return _parse_data_line(line, int(offset), path)


def _parse_data_line(line: str, offset: int, path: pathlib.Path) -> Synset:
    fields = line.split(" | ", 1)[0].split()
    if len(fields) < 4 or not fields[0].isdigit() or int(fields[0]) != offset:
        raise ValueError(f"{path}: no synset starts at byte offset {offset}")
    word_count = int(fields[3], 16)
    words = tuple(fields[4 + 2 * i] for i in range(word_count))
    position = 4 + 2 * word_count
    pointer_count = int(fields[position])
    pointers = collections.defaultdict(list)
    for i in range(pointer_count):
        symbol, target, pos = fields[position + 1 + 4 * i : position + 4 + 4 * i]
        if pos == "n":
            pointers[symbol].append(int(target))
    gloss = line.split(" | ", 1)[1].strip() if " | " in line else ""
    return Synset(
        offset,
        words,
        tuple(pointers["@"] + pointers["@i"]),
        tuple(pointers["~"]),
        tuple(pointers["~i"]),
        gloss,
    )


@functools.lru_cache(maxsize=4)
def _sense_index(directory: pathlib.Path) -> dict[str, tuple[int, ...]]:
    senses = {}
    with _file(directory, "index.noun").open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(" "):
                continue
            fields = line.split()
            pointer_count = int(fields[3])
            sense_count = int(fields[2])
            start = 6 + pointer_count
            senses[fields[0]] = tuple(int(o) for o in fields[start : start + sense_count])
    return senses


def _directory(directory) -> pathlib.Path:
    return pathlib.Path(WORDNET_DIR if directory is None else directory).resolve()


def synset_offset(name: str, directory: str | pathlib.Path | None = None) -> int:
    """Offset of a synset named ``lemma.n.NN`` (NLTK style), ``lemma`` (first sense) or
    an 8-digit offset.

    Raises:
      FileNotFoundError: if the database is missing.
      ValueError: if the name is unknown.
    """
    if name.isdigit():
        return read_synset(int(name), directory).offset
    lemma, sense = name, 1
    parts = name.rsplit(".", 2)
    if len(parts) == 3 and parts[1] == "n" and parts[2].isdigit():
        lemma, sense = parts[0], int(parts[2])
    senses = _sense_index(_directory(directory)).get(lemma.lower().replace(" ", "_"))
    if not senses:
        raise ValueError(f"no WordNet noun {lemma!r} (from {name!r})")
    if not 1 <= sense <= len(senses):
        raise ValueError(
            f"{lemma!r} has {len(senses)} noun senses, got sense {sense} (from {name!r})"
        )
    return senses[sense - 1]


def synset_name(synset: Synset, directory: str | pathlib.Path | None = None) -> str:
    """NLTK-style name ``lemma.n.NN`` of a synset (its first word's sense number)."""
    lemma = synset.words[0].lower()
    senses = _sense_index(_directory(directory)).get(lemma, ())
    if synset.offset not in senses:
        return f"{lemma}.{synset.offset:08d}"
    return f"{lemma}.n.{senses.index(synset.offset) + 1:02d}"


def wordnet_tree(
    roots: Sequence[str],
    max_depth: int = 3,
    max_children: int | None = None,
    include_instances: bool = False,
    directory: str | pathlib.Path | None = None,
) -> Tree:
    """The hyponym tree under ``roots`` (names as in :func:`synset_offset`).

    Args:
      roots: one synset (the root) or several (children of a node named ``"root"``).
      max_depth: depth of the tree below the root synsets (deeper synsets are cut;
        synsets at that depth become leaves).
      max_children: keep at most this many hyponyms per synset (those with hyponyms
        of their own first, then in ``data.noun`` order); ``None`` keeps all.
      include_instances: also follow instance hyponyms (``~i``: named entities).
      directory: where ``data.noun`` and ``index.noun`` are (default
        ``/usr/share/wordnet``).

    Returns:
      A :class:`~alignjax.data.hierarchy.Tree` whose leaves are the categories.

    Raises:
      FileNotFoundError: naming the missing file and the package to install.
      ValueError: for unknown names or bad limits.
    """
    if isinstance(roots, str) or not roots:
        raise ValueError(f"roots must be a non-empty sequence of synset names, got {roots!r}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be at least 1, got {max_depth}")
    if max_children is not None and max_children < 1:
        raise ValueError(f"max_children must be positive or None, got {max_children}")
    offsets = [synset_offset(name, directory) for name in roots]
    if len(set(offsets)) != len(offsets):
        raise ValueError(f"roots name the same synset more than once: {list(roots)}")
    path = _file(directory, "data.noun")
    names: list[str] = []
    parents: list[int] = []
    seen: set[int] = set()
    queue: collections.deque = collections.deque()
    offset_depth = 0
    if len(offsets) > 1:
        names.append("root")
        parents.append(-1)
        offset_depth = 1
    with path.open("rb") as f:

        def synset(offset):
            f.seek(offset)
            return _parse_data_line(f.readline().decode("utf-8", errors="replace"), offset, path)

        for offset in offsets:
            queue.append((offset, 0 if len(offsets) > 1 else -1, offset_depth))
            seen.add(offset)
        while queue:
            offset, parent, depth = queue.popleft()
            node = synset(offset)
            index = len(names)
            names.append(synset_name(node, directory))
            parents.append(parent)
            if depth - offset_depth >= max_depth:
                continue
            candidates = node.hyponyms + (node.instance_hyponyms if include_instances else ())
            children = [c for c in candidates if c not in seen]
            if max_children is not None and len(children) > max_children:
                # Prefer hyponyms that have hyponyms themselves, so the cut tree stays deep.
                children.sort(key=lambda c: not synset(c).hyponyms)
            kept = children[:max_children]
            for child in kept:
                seen.add(child)
                queue.append((child, index, depth + 1))
    return Tree(tuple(names), tuple(parents))
