"""A user's images and human judgments as an image source.

What a researcher brings (``alignjax fit alignet``): an image collection, optionally with
class labels, and optionally human odd-one-out judgments over some of the images.
:func:`files_source` reads them into an :class:`~alignjax.data.sources.ImageSource`
whose splits are rows of one *image order* (the order a teacher's features file
follows):

- **images**: an image folder (:func:`~alignjax.data.sources.image_folder`: one
  subfolder per class, or the files only; the order is the classes sorted, then the
  files sorted within each) or a TFDS/ArrayRecord data set with PNG/JPEG bytes
  (:func:`~alignjax.data.sources.tfds_encoded_images`: the record order). Images are
  decoded with Pillow when read and resized and centre-cropped to ``image_size``.
- **classes**: the subfolders, or the data set's ``"label"`` feature; they are the
  leaves of a one-level category tree (the root's children).
- **human triplets**: a THINGS-format triplet file (:func:`~alignjax.data.readers.read_triplets`,
  odd one out last) over *items*, and a map from items to images
  (:func:`~alignjax.data.readers.read_item_images`: one line per item, an image index or
  the image's path in the folder); without a map the items are the images. The
  triplets are split at random, by triplet, into train, validation and test sets.

Splits:

- ``pool``: every image (AligNet's triplets are sampled from it; it trains the models);
- ``humans``: the images of the triplet items (with triplets);
- ``evaluation``: a seeded sample of ``evaluation_images`` images, for neighbour
  preservation and, with classes, Levels triplets of the class tree
  (``triplets["evaluation"]["levels"]``: two images of one class, the odd one from
  another, the tree's own answer);
- ``held_out``: with classes, the same sample, for few-shot classification and anomaly
  detection (its classes were seen in the pool, unlabelled).

Every file is checked when it is read; errors name the file and the row.
"""

from __future__ import annotations

import pathlib

import numpy as np

from alignjax.config import ConfigError, checked, configclass
from alignjax.data import readers
from alignjax.data.hierarchy import Tree
from alignjax.data.levels import level_triplet_set
from alignjax.data.sources import ImageRows, ImageSource, image_folder, tfds_encoded_images
from alignjax.data.triplet_set import TripletSet, split_by_triplet

# The root of the class tree: "/" cannot be a folder's name, so it names no class.
ROOT = "/"


@configclass
class ImageFilesConfig:
    """A user's images and human judgments.

    Attributes:
      image_folder: a folder of PNG/JPEG images (one subfolder per class, or the files).
      tfds_name: or the name of a TFDS/ArrayRecord data set with encoded images ...
      tfds_data_dir: ... in this directory ...
      tfds_split: ... and this split.
      image_size: ``(height, width)`` of the models' inputs.
      triplets: THINGS-format triplet file over items (odd one out last), or ``None``.
      item_images: the image of every triplet item (one line per item: an image index
        or the image's path relative to the folder); ``None``: the items are the images.
      validation_fraction: share of the human triplets that chooses the surrogate
        teacher's temperature and penalty.
      test_fraction: share held out for the evaluation.
      evaluation_images: images in the evaluation sample.
      levels_per_level: Levels triplets over the evaluation sample (with classes).
      seed: seed of the triplet split, the sample and the Levels triplets.
    """

    image_folder: str | None = None
    tfds_name: str | None = None
    tfds_data_dir: str | None = None
    tfds_split: str = "train"
    image_size: tuple[int, int] = checked((32, 32), ge=1)
    triplets: str | None = None
    item_images: str | None = None
    validation_fraction: float = checked(0.1, gt=0, lt=1)
    test_fraction: float = checked(0.1, gt=0, lt=1)
    evaluation_images: int = checked(2000, ge=4)
    levels_per_level: int = checked(1000, ge=1)
    seed: int = 0

    def __post_init__(self):
        if (self.image_folder is None) == (self.tfds_name is None):
            raise ConfigError("give image_folder or tfds_name (with tfds_data_dir), not both")
        if self.tfds_name is not None and self.tfds_data_dir is None:
            raise ConfigError("=None: a TFDS data set needs its directory", "tfds_data_dir")
        if self.item_images is not None and self.triplets is None:
            raise ConfigError(
                f"={self.item_images!r}: maps the items of no triplets", "item_images"
            )
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"={self.test_fraction!r}: with validation_fraction={self.validation_fraction} "
                "no training triplets are left",
                "test_fraction",
            )


def class_tree(class_names: tuple[str, ...]) -> Tree:
    """The one-level tree whose leaves are the classes: leaf ``c + 1`` is class ``c``."""
    return Tree(names=(ROOT, *class_names), parents=(-1,) + (0,) * len(class_names))


def files_source(config: ImageFilesConfig) -> ImageSource:
    """The user's images, classes and human triplets as an image source (module docstring).

    Raises:
      FileNotFoundError, ValueError: a missing or malformed file (named, with its row),
        an item map whose count the triplet indices do not match.
    """
    size = tuple(config.image_size)
    if config.image_folder is not None:
        images, class_names = image_folder(config.image_folder, size)
        root = pathlib.Path(config.image_folder)
        names = [str(pathlib.Path(path).relative_to(root)) for path in images.records]
        where = str(root)
    else:
        images, class_names = tfds_encoded_images(
            config.tfds_name, config.tfds_data_dir, config.tfds_split, size
        )
        names = [str(i) for i in range(len(images))]
        where = f"TFDS {config.tfds_name}[{config.tfds_split}] in {config.tfds_data_dir}"
    n = len(images)
    rng = np.random.default_rng(config.seed)
    every = np.arange(n)
    splits = {"pool": ImageRows(images, every)}
    rows = {"pool": every}
    triplets: dict[str, dict[str, TripletSet]] = {}
    description = f"{n} images of {where}"
    if config.triplets is not None:
        items = (
            every
            if config.item_images is None
            else readers.read_item_images(config.item_images, names)
        )
        judged = readers.read_triplets(config.triplets, n_items=len(items))
        splits["humans"] = ImageRows(images, items)
        rows["humans"] = items
        train, validation, test = split_by_triplet(
            judged, config.validation_fraction, config.test_fraction, rng
        )
        if min(len(train), len(validation), 0 if test is None else len(test)) < 1:
            raise ValueError(
                f"{config.triplets}: {len(judged)} human triplets leave an empty train, "
                f"validation or test set (fractions {config.validation_fraction:g} and "
                f"{config.test_fraction:g})"
            )
        triplets["humans"] = {"train": train, "validation": validation, "test": test}
        description += f", {len(judged)} human triplets over {len(items)} of them"
    sample = np.sort(rng.choice(n, min(n, config.evaluation_images), replace=False))
    splits["evaluation"] = ImageRows(images, sample)
    rows["evaluation"] = sample
    tree, labels = None, {}
    if class_names is not None:
        tree = class_tree(class_names)
        leaves = images.labels["class"] + 1
        splits["held_out"] = splits["evaluation"]
        rows["held_out"] = sample
        labels = {split: {"leaf": leaves[split_rows]} for split, split_rows in rows.items()}
        if len(np.unique(leaves[sample])) >= 2:
            triplets["evaluation"] = {
                "levels": level_triplet_set(tree, leaves[sample], config.levels_per_level, rng)
            }
        description += f", {len(class_names)} classes"
    return ImageSource(description, splits, labels, tree, triplets, images=images)
