"""Pure loss functions on arrays (jax only): arrays in, ``jax.Array`` out.

Conventions (``METHODS.md`` section 1): a triplet's pair similarities are
``[s01, s02, s12]``; stored triplets put the odd one out last, so pair ``01`` is the
chosen most-similar pair. Losses return unreduced per-example values unless they are
inherently batch losses (then the docstring says what they return). Inputs of any
floating dtype are computed in at least float32. Bad shapes raise ``ValueError`` also
under ``jit``; value checks (positive temperatures, probabilities) run on concrete
inputs only.

Modules:

- ``triplet``: similarities, odd-one-out probabilities, cross-entropy, accuracy.
- ``distillation``: KL / JS between teacher and student triplet distributions.
- ``batch_distillation``: the same over every triplet of a batch, in O(B^2) memory.
- ``uncertainty_distillation``: KL from target choice probabilities (AligNet).
- ``glocal``, ``penalties``: gLocal's global and local losses and regularisers.
- ``generative_similarity_losses``: softmax, margin, many-negatives (InfoNCE) and
  soft-target contrastive losses that learn the generative similarity ``s_gen`` (its
  exact values, the worlds' ground truth, are in ``alignjax.data.generative_similarity``).
- ``contrastive``: the InfoNCE (SimCLR) and supervised contrastive baselines.
"""

from alignjax.losses.batch_distillation import batch_triplet_distillation
from alignjax.losses.contrastive import info_nce_loss, supervised_contrastive_loss
from alignjax.losses.distillation import triplet_js_divergence, triplet_kl_divergence
from alignjax.losses.generative_similarity_losses import (
    generative_similarity_contrastive_loss,
    generative_similarity_info_nce_loss,
    generative_similarity_margin_loss,
    generative_similarity_softmax_loss,
)
from alignjax.losses.glocal import (
    glocal_global_loss,
    glocal_local_loss,
    glocal_local_loss_from_similarities,
    glocal_objective,
    glocal_teacher_similarities,
)
from alignjax.losses.penalties import frobenius_penalty, scaled_identity_penalty
from alignjax.losses.triplet import (
    odd_one_out_cross_entropy,
    odd_one_out_log_probs,
    odd_one_out_probs,
    triplet_accuracy,
    triplet_similarities,
)
from alignjax.losses.uncertainty_distillation import uncertainty_distillation_loss

__all__ = [
    "batch_triplet_distillation",
    "frobenius_penalty",
    "generative_similarity_contrastive_loss",
    "generative_similarity_info_nce_loss",
    "generative_similarity_margin_loss",
    "generative_similarity_softmax_loss",
    "glocal_global_loss",
    "glocal_local_loss",
    "glocal_local_loss_from_similarities",
    "glocal_objective",
    "glocal_teacher_similarities",
    "info_nce_loss",
    "odd_one_out_cross_entropy",
    "odd_one_out_log_probs",
    "odd_one_out_probs",
    "scaled_identity_penalty",
    "supervised_contrastive_loss",
    "triplet_accuracy",
    "triplet_js_divergence",
    "triplet_kl_divergence",
    "triplet_similarities",
    "uncertainty_distillation_loss",
]
