"""The generative-similarity objectives of the experiments: the soft-target batch loss
("gensim_contrastive") and the many-negatives Monte Carlo loss ("gensim_nce")."""

import jax
import numpy as np
import pytest
from flax import nnx

from alignjax import losses
from alignjax.config import ConfigError
from alignjax.methods import objectives
from alignjax.models import encoders
from alignjax.training import TrainConfig

# Exact-looking s_gen of four latent classes: {0, 1} and {2, 3} are sibling pairs.
S_GEN = np.array(
    [[4.0, 2.0, 0.5, 0.5], [2.0, 4.0, 0.5, 0.5], [0.5, 0.5, 4.0, 2.0], [0.5, 0.5, 2.0, 4.0]]
)
CONFIG = objectives.ObjectiveConfig(batch_size=32, num_threads=0, examples_per_call=8)


def _items(rng, n):
    latents = rng.integers(0, 4, n)
    inputs = np.eye(4, dtype=np.float32)[latents] + rng.normal(0, 0.1, (n, 4)).astype(np.float32)
    return {"inputs": inputs, "labels": latents // 2, "latents": latents}


SOURCES = objectives.Sources(
    triplets=lambda rng, n: {"inputs": np.zeros((n, 3, 4), np.float32)},
    items=_items,
    augment=lambda rng, x: x,
    log_similarity=np.log(S_GEN),
)


def _reference_loss(z, latents, temperature):
    """``-sum_{j != i} q_ij log p_ij`` averaged over rows, written out in numpy."""
    z = np.asarray(z, np.float64)
    n = z.shape[0]
    losses = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        q = S_GEN[latents[i], latents[others]]
        q = q / q.sum()
        logits = z[others] @ z[i] / temperature
        log_p = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        losses.append(-(q * log_p).sum())
    return np.mean(losses)


def test_gensim_contrastive_loss_matches_the_soft_cross_entropy_written_out():
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    batch = _items(np.random.default_rng(0), 6)
    config = objectives.ObjectiveConfig(gensim_temperature=0.7)
    loss_fn = objectives.loss_function("gensim_contrastive", config, log_similarity=np.log(S_GEN))
    loss, metrics = loss_fn(model, batch)
    expected = _reference_loss(model(batch["inputs"]), batch["latents"], 0.7)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    jitted, _ = nnx.jit(loss_fn)(model, batch)
    np.testing.assert_allclose(float(jitted), float(loss), rtol=1e-6)
    assert metrics == {}


def test_gensim_contrastive_needs_a_table_and_latents():
    with pytest.raises(ValueError, match="log_similarity"):
        objectives.loss_function("gensim_contrastive", CONFIG)
    with pytest.raises(ValueError, match="square"):
        objectives.loss_function("gensim_contrastive", CONFIG, log_similarity=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        objectives.loss_function(
            "gensim_contrastive", CONFIG, log_similarity=np.full((2, 2), np.inf)
        )
    without_table = objectives.Sources(SOURCES.triplets, SOURCES.items, SOURCES.augment)
    with pytest.raises(ValueError, match="log_similarity"):
        objectives.example_function("gensim_contrastive", without_table, 4)
    no_latents = objectives.Sources(
        SOURCES.triplets,
        lambda rng, n: {"inputs": np.zeros((n, 4)), "labels": np.zeros(n, int)},
        SOURCES.augment,
        SOURCES.log_similarity,
    )
    with pytest.raises(ValueError, match="latents"):
        objectives.example_function("gensim_contrastive", no_latents, 4)(np.random.default_rng(0))


def test_gensim_contrastive_streams_items_with_latents_and_is_judged_by_its_kernel():
    example = objectives.example_function("gensim_contrastive", SOURCES, 5)(
        np.random.default_rng(1)
    )
    assert sorted(example) == ["inputs", "latents"]
    assert example["inputs"].shape == (5, 4) and example["latents"].shape == (5,)
    np.testing.assert_array_equal(example["inputs"].argmax(-1), example["latents"])
    cosine = objectives.ObjectiveConfig(gensim_kernel="cosine")
    assert objectives.similarity_kernel("gensim_contrastive", cosine) == "cosine"
    assert objectives.similarity_kernel("gensim_contrastive", CONFIG) == "dot"


def test_training_on_exact_targets_reaches_the_log_sgen_optimum(tmp_path):
    """At the optimum ``f_i . f_j / T = log s_gen(i, j) + c_i``: within a row, the
    similarity gaps are the gaps of ``log s_gen`` (``log 2`` to the sibling class,
    ``log 4`` from the sibling to the other two classes)."""
    encoder = encoders.EncoderConfig(kind="mlp", widths=(32,), embed_dim=8)
    train = TrainConfig(num_steps=150, learning_rate=1e-2, warmup_steps=20, progress_bar=False)
    model = objectives.train_encoder(
        "gensim_contrastive", SOURCES, encoder, (4,), train, CONFIG, workdir=tmp_path, seed=0
    )
    z = np.asarray(model(jax.numpy.eye(4)))
    similarity = z @ z.T
    log_s = np.log(S_GEN)
    gaps = similarity[:, :, None] - similarity[:, None, :]
    target_gaps = log_s[:, :, None] - log_s[:, None, :]
    np.testing.assert_allclose(gaps, target_gaps, atol=0.3)
    records = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(records) >= 2


def _same_theta_triplets(rng, n):
    """Anchor and positive from ``p(i, j) = s_gen(i, j) p(i) p(j)``, the negative from ``p``.

    The rows of ``S_GEN`` sum alike, so ``p`` is uniform and ``p(i, j)`` is proportional
    to ``S_GEN``; the generative similarity of the pairs is ``S_GEN`` up to a constant.
    """
    cells = rng.choice(S_GEN.size, size=n, p=(S_GEN / S_GEN.sum()).ravel())
    latents = np.stack([cells // 4, cells % 4, rng.integers(0, 4, n)], axis=1)
    return {
        "inputs": np.eye(4, dtype=np.float32)[latents]
        + rng.normal(0, 0.1, (n, 3, 4)).astype(np.float32)
    }


def test_gensim_nce_streams_pairs_and_wires_the_many_negatives_loss():
    sources = objectives.Sources(_same_theta_triplets, _items, lambda rng, x: x)
    example = objectives.example_function("gensim_nce", sources, 5)(np.random.default_rng(2))
    assert example["inputs"].shape == (5, 2, 4)
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    config = objectives.ObjectiveConfig(gensim_temperature=0.5)
    loss, metrics = objectives.loss_function("gensim_nce", config)(model, example)
    z = model(example["inputs"].reshape(10, 4)).reshape(5, 2, 3)
    expected = losses.generative_similarity_info_nce_loss(z[:, 0], z[:, 1], temperature=0.5).mean()
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
    assert metrics == {} and objectives.similarity_kernel("gensim_nce", config) == "dot"


def test_gensim_nce_reaches_the_log_sgen_optimum_from_samples_alone(tmp_path):
    """The many-negatives loss's optimal critic, like the triplet loss's, is ``log s_gen``
    plus a constant: trained on sampled pairs only (no table), the similarity gaps
    within a row are those of ``log s_gen``."""
    sources = objectives.Sources(_same_theta_triplets, _items, lambda rng, x: x)
    encoder = encoders.EncoderConfig(kind="mlp", widths=(32,), embed_dim=8)
    train = TrainConfig(num_steps=300, learning_rate=1e-2, warmup_steps=20, progress_bar=False)
    config = objectives.ObjectiveConfig(batch_size=64, num_threads=0, examples_per_call=16)
    model = objectives.train_encoder(
        "gensim_nce", sources, encoder, (4,), train, config, workdir=tmp_path
    )
    z = np.asarray(model(jax.numpy.eye(4)))
    similarity = z @ z.T
    log_s = np.log(S_GEN)
    gaps = similarity[:, :, None] - similarity[:, None, :]
    np.testing.assert_allclose(gaps, log_s[:, :, None] - log_s[:, None, :], atol=0.35)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"ObjectiveConfig.batch_size=0: must be an integer >= 1"),
        ({"gensim_temperature": 0.0}, r"ObjectiveConfig.gensim_temperature=0.0: .* > 0"),
        ({"contrastive_temperature": float("inf")}, r"contrastive_temperature=inf"),
        ({"num_threads": -1}, r"ObjectiveConfig.num_threads=-1: must be an integer >= 0"),
        ({"examples_per_call": 0}, r"ObjectiveConfig.examples_per_call=0: .* >= 1"),
        (
            {"batch_size": 24, "examples_per_call": 16},
            r"ObjectiveConfig.batch_size=24: must be a multiple of examples_per_call=16",
        ),
    ],
)
def test_bad_objective_configs_are_refused_on_construction(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        objectives.ObjectiveConfig(**kwargs)
