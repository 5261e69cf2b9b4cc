"""AligNet's backbones: the teacher and the student, trained here or read from files.

The chain needs two networks over the images of an
:class:`~alignjax.data.sources.ImageSource`:

- the **teacher**, whose features of every split are the raw material of the surrogate
  teacher (:mod:`alignjax.methods.alignet_surrogate`) and of the AligNet triplets. It is
  trained here on the pool (``teacher_objective``, by default supervised contrastive on
  ``teacher_labels``), or a big_vision ViT ``.npz`` (``teacher_checkpoint``) that is run
  on the images, or only its features (``teacher_features``: a ``[n_images, d]`` matrix
  in the source's image order, see :meth:`ImageSource.rows`);
- the **base student**, a ViT with AligNet's linear triplet head on pooled features,
  pretrained here on the pool (``student_objective``, by default SimCLR) or a
  big_vision ViT ``.npz`` (``student_checkpoint``).

Images reach a model as ``float32`` in ``input_range`` (``lo + (hi - lo) x`` for pixels
``x`` in ``[0, 1]``; big_vision's ViTs were trained on ``(-1, 1)``), read from the source
by index in batches (:func:`embed_images`) or drawn by the pretraining objectives
(:func:`pool_sources`); no split is held in memory as a whole unless the source holds it.

A checkpoint's head decides the model's output: a teacher with a ``head`` gives its head's
outputs (a SigLIP image tower's embedding), one without its pooled features; a student
keeps a checkpoint's head of its ``embed_dim`` and otherwise starts a new one.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

import grain
import numpy as np
from flax import nnx

from alignjax import models
from alignjax.data import augmentations, readers
from alignjax.data.sources import IMAGE_KEY, Images, ImageSource, read_images
from alignjax.methods import objectives
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.models import encoders
from alignjax.training.progress import tracked
from alignjax.training.stages import note, restored

# Images per batch of the embedding (every batch is padded to it, one compiled shape).
EMBED_BATCH = 256


def to_inputs(images: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    """uint8 images ``[..., H, W, C]`` as model inputs: ``float32`` in ``input_range``."""
    low, high = input_range
    x = np.asarray(images, np.uint8).astype(np.float32) / np.float32(255)
    return np.float32(low) + np.float32(high - low) * x


def embed_images(
    model: nnx.Module,
    images: Images,
    input_range: tuple[float, float],
    *,
    num_threads: int = 2,
) -> np.ndarray:
    """``model`` applied to every image of a collection, in order: ``float32 [n, d]``.

    Grain reads (and decodes) the images in ``num_threads`` threads, ``EMBED_BATCH`` at a
    time; the last batch is padded to the same size so one compiled function serves all
    (a collection smaller than a batch is one batch of its size).
    """
    n = len(images)
    if n == 0:
        raise ValueError("embed_images needs at least one image")
    batch = min(EMBED_BATCH, n)
    stream = (
        grain.MapDataset.source(images)
        .map(lambda record: record[IMAGE_KEY])
        .to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=batch))
        .batch(batch)
    )
    outputs = []
    for chunk in tracked(stream, total=-(-n // batch), unit="batch"):
        x = to_inputs(chunk, input_range)
        pad = batch - len(x)
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        outputs.append(encoders.embed(model, x, batch_size=batch)[: batch - pad])
    return np.concatenate(outputs)


def embed_splits(
    model: nnx.Module, splits: Mapping[str, Images], input_range: tuple[float, float]
) -> dict[str, np.ndarray]:
    """:func:`embed_images` of every split; a collection that two splits share (the same
    object) is embedded once."""
    embedded: dict[int, np.ndarray] = {}
    for split, images in splits.items():
        if id(images) not in embedded:
            note(f"embedding the {split} images ({len(images)})")
            embedded[id(images)] = embed_images(model, images, input_range)
    return {split: embedded[id(images)] for split, images in splits.items()}


def pool_sources(config: AligNetConfig, source: ImageSource, labels: str) -> objectives.Sources:
    """The pretraining objectives' samplers over the pool, drawing images by index.

    ``items`` gives model inputs and, where the pool has them, the ``labels`` (SupCon's);
    ``augment`` warps an input in pixel space (SimCLR's views).
    """
    pool = source.splits["pool"]
    values = source.labels.get("pool", {}).get(labels)
    low, high = config.input_range

    def items(rng, n):
        index = rng.integers(0, len(pool), n)
        example = {"inputs": to_inputs(read_images(pool, index), config.input_range)}
        if values is not None:
            example["labels"] = values[index]
        return example

    def triplets(rng, n):
        raise ValueError(
            "AligNet's pretraining objectives draw items, not triplets (objective 'gensim')"
        )

    def augment(rng, item):
        pixels = (item - np.float32(low)) / np.float32(high - low)
        view = augmentations.random_affine(rng, pixels, config.augmentation)
        return np.float32(low) + np.float32(high - low) * view

    return objectives.Sources(triplets=triplets, items=items, augment=augment)


def _checkpoint_layout(path: str | os.PathLike[str]) -> tuple[tuple[int, int] | None, str]:
    """The shape ``[width, k]`` of a big_vision checkpoint's ``head/kernel`` (``None`` if
    it has none) and its position embeddings: ``"learn"`` if it stores them, else
    ``"sincos2d"``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no big_vision checkpoint at {os.fspath(path)!r}")
    head, posemb = None, "sincos2d"
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            if key == "head/kernel" or key.endswith("/head/kernel"):
                head = tuple(npz[key].shape)
            if key.endswith("pos_embedding"):
                posemb = "learn"
    return head, posemb


def load_vit(
    encoder: encoders.EncoderConfig,
    path: str | os.PathLike[str],
    image_shape: tuple[int, int, int],
    *,
    head_dim: int | None,
    role: str = "student",
) -> models.ViT:
    """The ViT of ``encoder`` (variant, depth, pooling, position embeddings) with a big_vision
    checkpoint's weights.

    ``head_dim=None`` takes the checkpoint's head as it is (or none); otherwise the head
    is loaded when the checkpoint's has ``head_dim`` outputs and freshly initialised
    (from ``encoder.seed``) when it has another size or none. ``role`` (``"student"`` or
    ``"teacher"``) names the encoder's config in the error for a checkpoint whose position
    embeddings are not ``encoder.posemb``.
    """
    if encoder.kind != "vit":
        raise ValueError(f"a big_vision checkpoint needs a 'vit' encoder, not {encoder.kind!r}")
    head, posemb = _checkpoint_layout(path)
    if posemb != encoder.posemb:
        stored = "stores" if posemb == "learn" else "has no"
        raise ValueError(
            f"{os.fspath(path)}: the checkpoint {stored} learned position embeddings "
            f"(pos_embedding), so its ViT has posemb={posemb!r}, not {encoder.posemb!r}; "
            f"set the encoder's posemb={posemb!r} (e.g. --set {role}.posemb={posemb})"
        )
    if head_dim is None:
        head_dim = None if head is None else head[1]
    fresh_head = head is None or head[1] != head_dim
    model = encoders.build_vit(encoder, image_shape, head_dim=head_dim)
    try:
        return models.load_big_vision_npz(model, path, dont_load=("head/.*",) if fresh_head else ())
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)}: {error}") from None


def _check_labels(objective: str, source: ImageSource, labels: str, role: str) -> None:
    if objective == "supcon" and labels not in source.labels.get("pool", {}):
        raise ValueError(
            f"{role}_objective 'supcon' trains on the pool's {labels!r} labels, which "
            f"{source.description} does not have; give a {role} checkpoint"
            + (" or features" if role == "teacher" else "")
            + " or another objective"
        )


def teacher(config: AligNetConfig, source: ImageSource, workdir: pathlib.Path) -> nnx.Module | None:
    """The teacher network: trained on the pool (``workdir/teacher``), a big_vision
    checkpoint, or ``None`` when only its features are given."""
    shape = source.image_shape("pool")
    if config.teacher_features is not None:
        return None
    if config.teacher_checkpoint is not None:
        return load_vit(
            config.teacher, config.teacher_checkpoint, shape, head_dim=None, role="teacher"
        )
    _check_labels(config.teacher_objective, source, config.teacher_labels, "teacher")
    return objectives.train_encoder(
        config.teacher_objective,
        pool_sources(config, source, config.teacher_labels),
        config.teacher,
        shape,
        config.teacher_train,
        config.pretraining,
        workdir=workdir / "teacher",
        seed=config.seed,
    )


def base_student(config: AligNetConfig, source: ImageSource, workdir: pathlib.Path) -> nnx.Module:
    """The base student: a big_vision checkpoint, or pretrained on the pool
    (``workdir/student_base``)."""
    shape = source.image_shape("pool")
    if config.student_checkpoint is not None:
        return load_vit(
            config.student, config.student_checkpoint, shape, head_dim=config.student.embed_dim
        )
    _check_labels(config.student_objective, source, config.teacher_labels, "student")
    return objectives.train_encoder(
        config.student_objective,
        pool_sources(config, source, config.teacher_labels),
        config.student,
        shape,
        config.student_pretrain,
        config.pretraining,
        workdir=workdir / "student_base",
        seed=config.seed + 1,
    )


def features_from_file(path: str | os.PathLike[str], source: ImageSource) -> dict[str, np.ndarray]:
    """A ``[n_images, d]`` features file split like the source (rows of its image order).

    Raises:
      ValueError: the file's rows do not match the number of images.
    """
    features = readers.read_features(path).astype(np.float32)
    if source.images is None:
        raise ValueError(
            f"{os.fspath(path)}: a features file needs images in a known order (an image "
            f"folder or a TFDS data set), not {source.description}"
        )
    if len(features) != len(source.images):
        raise ValueError(
            f"{os.fspath(path)}: {len(features)} rows of features for {len(source.images)} "
            "images; one row per image, in image order (folder: classes sorted, then files "
            "sorted; TFDS: record order)"
        )
    return {split: features[source.rows(split)] for split in source.splits}


def teacher_features(
    config: AligNetConfig,
    model: nnx.Module | None,
    source: ImageSource,
    path: pathlib.Path,
) -> dict[str, np.ndarray]:
    """The teacher's features of every split, cached in ``path`` (``.npz``).

    With an image order every image is embedded once and the splits take their rows.
    """
    if model is None:
        return features_from_file(config.teacher_features, source)
    if path.exists():
        restored()
        with np.load(path) as stored:
            return {split: stored[split] for split in stored.files}
    if source.images is not None:
        every = embed_images(model, source.images, config.input_range)
        result = {split: every[source.rows(split)] for split in source.splits}
    else:
        result = embed_splits(model, source.splits, config.input_range)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        np.savez(file, **result)
    return result


def export_student(model: nnx.Module, path: pathlib.Path) -> pathlib.Path:
    """Writes a ViT student as a big_vision ``.npz`` (:func:`alignjax.models.save_big_vision_npz`,
    prefix ``params/``); read it back with :func:`load_vit` or big_vision's loader."""
    if not isinstance(model, models.ViT):
        raise ValueError(f"only a ViT student exports to big_vision, not {type(model).__name__}")
    partial = path.with_name(f".{path.name}.partial")
    models.save_big_vision_npz(model, partial)
    partial.replace(path)
    return path
