"""Exact triplet distillation over every triplet of a batch, in O(B^2) memory.

A batch of ``B`` items holds ``C(B, 3)`` triplets. Materialising their similarities
takes O(B^3) memory (4 GiB per array at ``B = 1024``); here the two ``[B, B]``
similarity matrices (and, when differentiated, their gradients) are the only large
arrays. The triplets ``i < j < k`` are visited in blocks: the items are cut into blocks
of ``block_size``, and a ``lax.scan`` runs over the block triples ``I <= J <= K``; each
step computes the divergences of a ``[b, b, b]`` cube from three ``[b, b]`` tiles of
each similarity matrix (``s_ij``, ``s_ik``, ``s_jk``), masked to ``i < j < k``.
Visiting only ``I <= J <= K`` does about a sixth of the work of all ordered triples,
and small cubes stay in cache. The gradient is accumulated in closed form during the
same scan (a ``jax.custom_vjp``), so the backward pass also stays O(B^2).

References:
  Muttenthaler et al., *Aligning Machine and Human Visual Representations across
  Abstraction Levels*, 2024 (arXiv:2409.06509).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from alignjax.losses import _batch, _divergence, _kernels
from alignjax.losses import _validation as v


def batch_triplet_distillation(
    teacher_embeddings: jax.typing.ArrayLike,
    student_embeddings: jax.typing.ArrayLike,
    *,
    divergence: str = "kl",
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
    kernel: str = "dot",
    teacher_kernel: str | None = None,
    triplets: jax.typing.ArrayLike | None = None,
    axis_name: str | None = None,
    block_size: int = 64,
) -> jax.Array:
    """Mean teacher-to-student triplet divergence over all triplets of a batch.

    With similarity matrices :math:`S^t` (teacher, under ``teacher_kernel``) and
    :math:`S^s` (student, under ``kernel``) of the batch,

    .. math::

        \\mathcal L = \\frac{1}{|\\mathcal T|} \\sum_{(i,j,k) \\in \\mathcal T}
        D\\big(\\operatorname{softmax}([S^t_{ij}, S^t_{ik}, S^t_{jk}] / T_t)
        \\,\\big\\|\\, \\operatorname{softmax}([S^s_{ij}, S^s_{ik}, S^s_{jk}] / T_s)\\big),

    where :math:`D` is KL or Jensen-Shannon and :math:`\\mathcal T` is the set of all
    *unordered* triplets ``i < j < k`` (``C(B, 3)`` of them) or the given ``triplets``.
    Unordered triplets suffice: permuting a triplet's items permutes both
    distributions' pairs the same way, which leaves :math:`D` unchanged. The result is
    exact (no sampling).

    Args:
      teacher_embeddings: ``[B, d_t]`` teacher features of the batch.
      student_embeddings: ``[B, d_s]`` student features of the same items.
      divergence: ``"kl"`` (``KL(teacher || student)``) or ``"js"``.
      teacher_temperature: positive scalar ``T_t``.
      student_temperature: positive scalar ``T_s``.
      kernel: ``"dot"`` or ``"cosine"``, the student's similarity (and the teacher's
        unless ``teacher_kernel`` is given).
      teacher_kernel: ``"dot"`` or ``"cosine"`` for the teacher; ``None``: ``kernel``.
        (AligNet compares a cosine student with the dot products of its teacher's
        pseudo-labels.)
      triplets: optional ``[n, 3]`` integer indices into the batch (the gathered
        batch under ``axis_name``); then only these triplets are averaged. They
        are range-checked when concrete.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the batch sharded along
        this axis: the embeddings are all-gathered, and (for all triplets) each device
        computes a share of the block triples; with ``triplets``, each device passes
        its own triplets (indices into the gathered batch) and the mean is over all
        devices' triplets. The value equals the unsharded one on every device. See
        *Gradients across devices* below before differentiating inside the map.
      block_size: items per block (a tuning knob, not part of the math; see
        ``benchmarks/losses.py``).

    Returns:
      A scalar: the mean divergence over the triplets, float32 (float64 for float64
      inputs). Differentiable in reverse mode (``jax.grad``); over all triplets the
      gradient is a ``jax.custom_vjp``, which has no forward mode (``jax.jvp``).

    Gradients across devices:
      Under ``axis_name`` every device holds the *global* loss, so what a gradient
      means depends on where it is taken, with ``n`` devices on the axis:

      - ``jax.grad`` of the whole mapped function (outside ``shard_map``/``pmap``):
        the unsharded gradient; nothing to reduce.
      - ``jax.grad`` inside ``jax.pmap``: each device seeds a cotangent of 1 on its
        copy of the global loss, and the transposes of the loss's ``psum`` and
        all-gather add up the ``n`` seeds, so the gradient of the local embeddings
        is ``n`` times the unsharded gradient of those rows. For parameters
        replicated on every device, ``jax.lax.pmean(grads, axis_name)`` is the
        unsharded gradient; ``jax.lax.psum`` is ``n`` times too large.
      - ``jax.grad`` inside ``jax.shard_map`` (with its default ``check_vma=True``):
        the gradient of the local embeddings is already the unsharded one, and that
        of a replicated parameter comes out already summed over devices;
        ``pmean`` leaves it unchanged and ``psum`` makes it ``n`` times too large.

      So reduce the gradients of replicated parameters with ``pmean``, never
      ``psum``; ``tests/test_losses_sharded.py`` checks all three cases.

    Raises:
      ValueError: on mismatched batch sizes, fewer than 3 items, an unknown
        ``divergence``/``kernel``, a non-positive temperature or bad ``triplets``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import batch_triplet_distillation
      >>> x = jnp.eye(4)
      >>> float(batch_triplet_distillation(x, x))  # same similarities: no divergence
      0.0

    References:
      Muttenthaler et al., 2024 (arXiv:2409.06509), the AligNet objective, applied to
      every triplet of a batch.
    """
    v.check_ndim("teacher_embeddings", teacher_embeddings, 2, "[B, d_t]")
    v.check_ndim("student_embeddings", student_embeddings, 2, "[B, d_s]")
    v.check_same_size(
        ("teacher_embeddings", "student_embeddings"),
        (jnp.shape(teacher_embeddings)[0], jnp.shape(student_embeddings)[0]),
        "The batch sizes (axis 0)",
    )
    v.check_choice("divergence", divergence, v.DIVERGENCES)
    v.check_choice("kernel", kernel, v.KERNELS)
    teacher_kernel = kernel if teacher_kernel is None else teacher_kernel
    v.check_choice("teacher_kernel", teacher_kernel, v.KERNELS)
    v.check_temperature("teacher_temperature", teacher_temperature)
    v.check_temperature("student_temperature", student_temperature)
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"`block_size` must be a positive int; got {block_size!r}.")

    dtype = v.compute_dtype(teacher_embeddings, student_embeddings)
    teacher, _ = _batch.gather_batch(v.as_float(teacher_embeddings, dtype), axis_name)
    student, _ = _batch.gather_batch(v.as_float(student_embeddings, dtype), axis_name)
    batch = teacher.shape[0]
    if triplets is None and batch < 3:
        raise ValueError(
            f"`teacher_embeddings` must hold at least 3 items to form a triplet; got "
            f"shape {jnp.shape(teacher_embeddings)}."
        )
    teacher_logits = _kernels.pairwise(teacher, teacher, teacher_kernel) / teacher_temperature
    student_logits = _kernels.pairwise(student, student, kernel) / student_temperature
    if triplets is None:
        total = _sum_over_all_triplets(
            teacher_logits, student_logits, divergence, block_size, axis_name
        )
        count = float(math.comb(batch, 3))  # exceeds int32 beyond B ~ 2345
    else:
        _check_triplets(triplets, batch)
        i, j, k = (jnp.asarray(triplets)[:, c] for c in range(3))
        total = jnp.sum(
            _divergence.DIVERGENCES[divergence](
                (teacher_logits[i, j], teacher_logits[i, k], teacher_logits[j, k]),
                (student_logits[i, j], student_logits[i, k], student_logits[j, k]),
            )
        )
        count = jnp.shape(triplets)[0]
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
        if triplets is not None:
            count = jax.lax.psum(count, axis_name)
    return total / count


def _check_triplets(triplets, batch: int) -> None:
    v.check_ndim("triplets", triplets, 2, "[n, 3]")
    v.check_axis_size("triplets", triplets, 1, 3, "[n, 3]")
    if not jnp.issubdtype(jnp.result_type(triplets), jnp.integer):
        raise ValueError(
            f"`triplets` must hold integer indices; got dtype {jnp.result_type(triplets)}."
        )
    if jnp.shape(triplets)[0] == 0:
        raise ValueError("`triplets` must hold at least one triplet; got shape (0, 3).")
    if v.is_concrete(triplets):
        t = np.asarray(triplets)
        if t.min() < 0 or t.max() >= batch:
            raise ValueError(
                f"`triplets` must index the batch of {batch} items (0 <= index < "
                f"{batch}); got indices from {t.min()} to {t.max()}."
            )


def _block_triples(n_blocks: int) -> np.ndarray:
    """All ``(I, J, K)`` with ``I <= J <= K < n_blocks``, shape ``[m, 3]``."""
    return np.array(
        [
            (bi, bj, bk)
            for bi in range(n_blocks)
            for bj in range(bi, n_blocks)
            for bk in range(bj, n_blocks)
        ],
        dtype=np.int32,
    )


def _sum_over_all_triplets(
    teacher_logits, student_logits, divergence: str, block_size: int, axis_name
) -> jax.Array:
    """Sum of the divergences over ``i < j < k`` (this device's share under ``axis_name``)."""
    batch = teacher_logits.shape[0]
    b = min(int(block_size), batch)
    n_blocks = -(-batch // b)
    pad = n_blocks * b - batch
    table = _block_triples(n_blocks)
    live = np.ones(len(table), dtype=bool)
    if axis_name is None:
        table, live = jnp.asarray(table), jnp.asarray(live)
    else:
        # Deal the block triples round-robin to the devices; padding entries are dead.
        n_devices = jax.lax.axis_size(axis_name)
        steps = -(-len(table) // n_devices)
        extra = steps * n_devices - len(table)
        table = np.concatenate([table, np.zeros((extra, 3), np.int32)])
        live = np.concatenate([live, np.zeros(extra, bool)])
        device = jax.lax.axis_index(axis_name)
        table = jnp.asarray(table.reshape(steps, n_devices, 3))[:, device]
        live = jnp.asarray(live.reshape(steps, n_devices))[:, device]
    return _triplet_sum(
        divergence,
        b,
        batch,
        jnp.pad(teacher_logits, ((0, pad), (0, pad))),
        jnp.pad(student_logits, ((0, pad), (0, pad))),
        table,
        live,
    )


def _cubes(t_logits, s_logits, block, alive, b: int, batch: int):
    """The ``[b, b, b]`` logits of block triple ``block`` and the mask of ``i < j < k``."""
    starts = (block[0] * b, block[1] * b, block[2] * b)
    start_i, start_j, start_k = starts

    def tile(m, r, c):
        return jax.lax.dynamic_slice(m, (r, c), (b, b))

    def cube(m):
        return (
            tile(m, start_i, start_j)[:, :, None],
            tile(m, start_i, start_k)[:, None, :],
            tile(m, start_j, start_k)[None, :, :],
        )

    offsets = jnp.arange(b)
    gi = (start_i + offsets)[:, None, None]
    gj = (start_j + offsets)[None, :, None]
    gk = (start_k + offsets)[None, None, :]
    mask = (gi < gj) & (gj < gk) & (gk < batch) & alive
    return cube(t_logits), cube(s_logits), mask, starts


# The gradient is written by hand: autodiff of the scan would either store every cube
# (O(B^3) memory) or, under jax.checkpoint, recompute the forward and then run its
# generic transpose. Instead the forward pass of a differentiated call accumulates the
# closed-form gradients of both [B, B] logit matrices alongside the value (sharing the
# softmaxes), and the backward pass only scales them. XLA drops the teacher's
# accumulator when the teacher is not differentiated.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _triplet_sum(divergence, b, batch, t_logits, s_logits, table, live):
    divergence_fn = _divergence.DIVERGENCES[divergence]

    def step(carry, xs):
        block, alive = xs
        u, v, mask, _ = _cubes(t_logits, s_logits, block, alive, b, batch)
        return carry, jnp.sum(jnp.where(mask, divergence_fn(u, v), 0.0))

    # Per-block sums as scan outputs: a more accurate total than a running sum.
    _, sums = jax.lax.scan(step, None, (table, live))
    return jnp.sum(sums)


def _triplet_sum_fwd(divergence, b, batch, t_logits, s_logits, table, live):
    with_grads = _divergence.DIVERGENCES_WITH_GRADS[divergence]

    def add_cube(acc, grads, mask, starts):
        start_i, start_j, start_k = starts
        for g, axis, (row, col) in zip(
            grads, (2, 1, 0), ((start_i, start_j), (start_i, start_k), (start_j, start_k))
        ):
            tile = jnp.sum(jnp.where(mask, g, 0.0), axis=axis)
            current = jax.lax.dynamic_slice(acc, (row, col), (b, b))
            acc = jax.lax.dynamic_update_slice(acc, current + tile, (row, col))
        return acc

    def step(carry, xs):
        d_t, d_s = carry
        block, alive = xs
        u, v, mask, starts = _cubes(t_logits, s_logits, block, alive, b, batch)
        value, g_u, g_v = with_grads(u, v)
        carry = (add_cube(d_t, g_u, mask, starts), add_cube(d_s, g_v, mask, starts))
        return carry, jnp.sum(jnp.where(mask, value, 0.0))

    # Built from every input of the step so that under shard_map the carry has the
    # device-variance of the per-step updates (each device has its own blocks).
    zeros = (
        jnp.zeros_like(t_logits)
        + jnp.zeros_like(s_logits)
        + 0 * table[0, 0].astype(t_logits.dtype)
        + 0 * live[0].astype(t_logits.dtype)
    )
    (d_t, d_s), sums = jax.lax.scan(step, (zeros, zeros), (table, live))
    return jnp.sum(sums), (d_t, d_s)


def _triplet_sum_bwd(divergence, b, batch, residuals, cotangent):
    d_t, d_s = residuals
    return cotangent * d_t, cotangent * d_s, None, None


_triplet_sum.defvjp(_triplet_sum_fwd, _triplet_sum_bwd)
