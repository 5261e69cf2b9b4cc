"""The WordNet noun tree (skipped where the Debian package wordnet-base is absent)."""

import pathlib

import numpy as np
import pytest

from alignjax.data import levels, wordnet
from alignjax.data.hierarchy import HierarchyWorld

pytestmark = pytest.mark.skipif(
    not (wordnet.WORDNET_DIR / "data.noun").is_file(),
    reason=f"WordNet not installed at {wordnet.WORDNET_DIR} (Debian package wordnet-base)",
)


def test_synset_lookup():
    # WordNet 3.0: dog.n.01 is synset 02084071 {dog, domestic_dog, Canis_familiaris}.
    offset = wordnet.synset_offset("dog.n.01")
    assert offset == 2084071 == wordnet.synset_offset("dog") == wordnet.synset_offset("02084071")
    synset = wordnet.read_synset(offset)
    assert synset.words[:2] == ("dog", "domestic_dog")
    assert wordnet.synset_offset("canine.n.02") in synset.hypernyms
    assert wordnet.synset_name(synset) == "dog.n.01"
    assert wordnet.synset_offset("dog.n.02") != offset


def test_tree_follows_hyponym_pointers():
    tree = wordnet.wordnet_tree(["animal.n.01", "artifact.n.01"], max_depth=2, max_children=3)
    assert tree.names[0] == "root"
    assert [tree.names[c] for c in tree.children[0]] == ["animal.n.01", "artifact.n.01"]
    assert tree.height <= 3
    assert max(len(c) for c in tree.children[1:]) <= 3
    for node in range(1, tree.num_nodes):
        parent = tree.parents[node]
        if parent == 0:
            continue
        child = wordnet.read_synset(wordnet.synset_offset(tree.names[node]))
        assert wordnet.synset_offset(tree.names[parent]) in child.hypernyms


def test_wordnet_tree_drives_the_hierarchy_world():
    tree = wordnet.wordnet_tree(["dog.n.01"], max_depth=3, max_children=3)
    assert tree.height == 3  # hyponyms with hyponyms of their own come first
    world = HierarchyWorld(tree=tree, image_size=8)
    rng = np.random.default_rng(0)
    leaves = np.repeat(tree.leaves, 2)
    depth = world.split_depth("boundary")
    triplet = leaves[levels.sample_level_triplets(tree, leaves, depth, 1, rng)[0]]
    assert world.render_items(rng, triplet).shape == (3, 8, 8, 3)
    assert tree.depths[tree.lca(triplet[0], triplet[2])] == 1
    s = np.exp(world.log_generative_similarity(tree.leaves[:, None], tree.leaves[None, :]))
    np.testing.assert_allclose(s, s.T, rtol=1e-5)


def test_errors(tmp_path: pathlib.Path):
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        wordnet.wordnet_tree(["dog.n.01"], directory=tmp_path)
    with pytest.raises(ValueError, match="no WordNet noun"):
        wordnet.synset_offset("qwxyzzy.n.01")
    with pytest.raises(ValueError, match="noun senses"):
        wordnet.synset_offset("dog.n.99")
    with pytest.raises(ValueError, match="no synset starts"):
        wordnet.read_synset(2084072)
    with pytest.raises(ValueError, match="max_depth"):
        wordnet.wordnet_tree(["dog.n.01"], max_depth=0)
