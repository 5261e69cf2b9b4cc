"""Test session setup: 8 simulated CPU devices, so sharded code runs on one machine.

The device count must be set before JAX initialises its backends, hence right after
the import and before anything else touches JAX.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
