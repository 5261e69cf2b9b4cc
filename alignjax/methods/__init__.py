"""The papers' chains, each a short composition of the layers below, and their reports.

- ``objectives``: generative-similarity triplets and the contrastive baselines
  (SimCLR, SupCon, untrained), trained by the generic trainer.
- ``gensim_*``: the generative-similarity experiments, one per domain, each with its
  ``gensim_*_report``.
- ``glocal``: the gLocal chain (fit the naive and gLocal transforms over a grid,
  select, evaluate); ``glocal_fit`` its objective, config and grid search,
  ``glocal_data`` the experiment's data (a world with simulated people, or THINGS),
  ``glocal_files`` a user's files (``alignjax fit glocal``), ``glocal_report`` and
  ``glocal_findings`` (each claim of the paper, held or not in the run).
- ``alignet``: the AligNet chain on an image source; ``alignet_config``,
  ``alignet_backbones`` (teacher and student), ``alignet_surrogate`` (uncertainty
  distillation), ``alignet_triplets`` (clusters, triplets, pseudo-labels),
  ``alignet_distillation``, ``alignet_evaluation``, ``alignet_report`` and
  ``alignet_findings`` (each claim of the paper, held or not in the run).
- ``encoders``: encoders built from a config and applied in batches.
- ``report``: ``report.md`` with tables and plots.
"""
