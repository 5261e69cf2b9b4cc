"""The papers' chains, each a short composition of the layers below.

- ``objectives``: generative-similarity triplets and the contrastive baselines
  (SimCLR, SupCon, untrained), trained by the generic trainer.
- ``encoders``: encoders built from a config and applied in batches.
- ``report``: ``report.md`` with tables and plots.
- ``gensim_*``: the generative-similarity experiments, one per domain.
- ``glocal``: gLocal transforms of frozen features.
- ``alignet``: the AligNet chain (teacher, uncertainty distillation, clusters,
  triplets, student distillation, evaluation).
"""
