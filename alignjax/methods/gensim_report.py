"""What the four generative-similarity reports share: the objectives' glossary entries,
the finding of a run without the method, and where the training curves are.

Each ``gensim_*_report`` module checks its own claims; this module keeps the words the
reports use alike (:func:`glossary`) and tells where each objective's TensorBoard
event files are (:func:`training_curves`).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

from alignjax.methods.report import Finding, tensorboard_hint

#: What each objective is, in every generative-similarity experiment; a report may say
#: more (what SupCon's labels are, what SimCLR's views are) through ``glossary``.
OBJECTIVE_TERMS: dict[str, str] = {
    "gensim": "the paper's method: the softmax triplet loss on Monte Carlo triplets of the "
    "generative model (anchor and positive from one distribution, negative from an "
    "independent one); its optimal critic is log s_gen(x, y) + c(x)",
    "gensim_nce": "the many-negatives form of the paper's triplet loss: Monte Carlo pairs of "
    "the generative model (two draws of one distribution), each pair contrasted with the other "
    "pairs of a batch; the same optimal critic log s_gen(x, y) + c(x)",
    "gensim_contrastive": "the soft-target loss on the exact s_gen (where it is computable)",
    "simclr": "InfoNCE between two augmented views of one item",
    "supcon": "supervised contrastive learning on category labels",
    "untrained": "the encoder at initialisation",
}


def glossary(
    trained: Sequence[str], terms: Mapping[str, str], **objective_terms: str
) -> dict[str, str]:
    """The experiment's ``terms``, then the entries of the objectives in ``trained``
    (:data:`OBJECTIVE_TERMS`, or the ``objective_terms`` given for this experiment).

    >>> terms = glossary(("gensim", "untrained"), {"chance": "1/3"}, untrained="random weights")
    >>> list(terms), terms["untrained"]
    (['chance', 'gensim', 'untrained'], 'random weights')
    """
    meanings = {**OBJECTIVE_TERMS, **objective_terms}
    return {**terms, **{name: meanings[name] for name in trained}}


def untested(claim: str, trained: Sequence[str]) -> Finding:
    """The finding of a run that trained no generative-similarity objective first."""
    return Finding(
        claim,
        None,
        f"the run's first objective ({trained[0]}) is not a generative-similarity loss, so "
        "there is no method to check",
    )


def training_curves(workdir: str | os.PathLike[str], trained: Sequence[str]) -> str:
    """Where the trained objectives' TensorBoard event files are, and how to open them."""
    dirs = ", ".join(
        f"`{pathlib.Path(workdir) / name / 'tensorboard'}`"
        for name in trained
        if name != "untrained"
    )
    return tensorboard_hint(workdir) + (f" One run per objective: {dirs}." if dirs else "")
