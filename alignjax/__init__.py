"""alignjax: human-aligned visual representations in JAX.

Three methods on one set of layers (imports point down only):

- ``alignjax.losses``: pure loss functions on arrays (jax only).
- ``alignjax.config``: validated configs, overrides, ``TrainConfig``, ``MeshConfig``.
- ``alignjax.data``: seeded synthetic worlds, simulated observers, triplet sets,
  TFDS/ArrayRecord storage, Grain pipelines, readers for real data.
- ``alignjax.models``: Flax NNX students (ViT, CNN) and the affine transform.
- ``alignjax.training``: meshes, the generic sharded trainer, the optimizer
  (``decay_to_init``), Orbax checkpoints.
- ``alignjax.evaluation``: odd-one-out accuracy, RSA/CKA, neighbours, few-shot,
  anomaly detection, calibration, the oddball task.
- ``alignjax.methods``: generative similarity, gLocal and AligNet pipelines.

Importing ``alignjax`` imports nothing heavy; import the layer you need.
"""

__version__ = "0.1.0"
