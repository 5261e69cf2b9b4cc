"""alignjax.data: worlds, observers, triplet sets, storage, Grain pipelines, readers.

Every public name of the data modules is available here, imported on first use so that
``import alignjax.data`` stays cheap (``tensorflow_datasets`` and ``grain`` take about a
second to import and are only needed for storage and streaming):

- ``triplet_set``: :class:`TripletSet`, ``concatenate``, ``sort_odd_last``.
- ``observers``: :class:`LuceObserver`, noise ceilings, THINGS-like simulated data sets.
- ``tfds_builders``: TFDS/ArrayRecord image-set and triplet-set builders and readers.
- ``pipeline``: Grain streams (on the fly and from storage), device placement.
- ``readers``: THINGS-format triplet files, feature matrices, item-to-image maps,
  per-triplet levels, the THINGS category table.
- ``sources``: the :class:`ImageSource` every chain reads (named splits of images,
  labels, a category tree, human triplets), from arrays, stored TFDS image sets, image
  folders and encoded TFDS/ArrayRecord data sets (decoded with Pillow); ``simulated``
  and ``image_files`` build the sources of AligNet's simulated setting and of a user's
  files.
- ``fashion_mnist``: the Debian ``dataset-fashion-mnist`` files and a class hierarchy.
- ``world``: the :class:`World` protocol every generative world follows
  (``sample(rng, n)``, ``sample_triplets(rng, n)``) and its ``batch_generator``.
- worlds: ``gaussian_mixture``, ``quadrilaterals``, ``geoclidean`` (with the
  ``geoclidean_grammar`` of concepts), ``hierarchy`` (with ``wordnet`` trees), drawn by
  ``rendering``; ``figures`` pictures them.
- ``generative_similarity``: the exact and Monte Carlo ``log s_gen`` the worlds compute
  (mixtures, Gaussian mixtures, conjugate Gaussians).
- ``levels``: abstraction levels of a category tree (Levels triplets, level codes,
  held-out categories).

>>> import alignjax.data as data
>>> data.TripletSet.__module__
'alignjax.data.triplet_set'
"""

import importlib

_MODULE_EXPORTS = {
    "triplet_set": ("TripletSet", "concatenate", "odd_last_order", "sort_odd_last"),
    "observers": (
        "LuceObserver",
        "TripletDataset",
        "empirical_noise_ceiling",
        "noise_ceiling",
        "pair_similarities",
        "random_triplets",
        "simulate_triplet_dataset",
    ),
    "tfds_builders": (
        "ImageSetBuilder",
        "TripletSetBuilder",
        "data_source",
        "read_image_set",
        "read_triplet_set",
        "write_image_set",
        "write_triplet_set",
    ),
    "pipeline": ("device_put_batch", "example_stream", "triplet_stream"),
    "readers": (
        "read_features",
        "read_item_images",
        "read_levels",
        "read_things_categories",
        "read_triplets",
    ),
    "sources": (
        "ArrayImages",
        "DecodedImages",
        "ImageRows",
        "ImageSource",
        "Images",
        "image_folder",
        "read_images",
        "tfds_encoded_images",
        "tfds_images",
    ),
    "simulated": ("SimulatedConfig", "simulated_source"),
    "image_files": ("ImageFilesConfig", "files_source"),
    "fashion_mnist": (
        "CLASS_NAMES",
        "FASHION_MNIST_DIR",
        "SUPERORDINATE_NAMES",
        "SUPERORDINATE_OF_CLASS",
        "load_fashion_mnist",
        "read_idx",
    ),
    "world": ("World", "batch_generator"),
    "generative_similarity": (
        "conjugate_gaussian_log_generative_similarity",
        "gaussian_component_log_likelihoods",
        "gaussian_mixture_log_generative_similarity",
        "mixture_log_generative_similarity",
        "monte_carlo_log_generative_similarity",
    ),
    "gaussian_mixture": ("GaussianMixtureWorld",),
    "quadrilaterals": (
        "ANGLE_TOLERANCE",
        "CLASS_SIGNATURES",
        "INTRUDER_VERTEX",
        "QuadrilateralWorld",
        "RATIO_TOLERANCE",
        "REFERENCE_SHAPES",
        "SHAPE_NAMES",
        "classify",
        "interior_angles",
        "intruders",
        "is_convex",
        "mean_vertex_distance",
        "property_prior",
        "side_lengths",
        "signature",
        "symmetry_axes",
    ),
    "geoclidean": (
        "CONCEPTS",
        "CONCEPT_NAMES",
        "Concept",
        "GeoclideanWorld",
        "Instance",
        "Program",
        "Statement",
        "parse_program",
        "program_similarity",
        "sample_instance",
        "structure_key",
    ),
    "geoclidean_grammar": ("ConceptGrammar", "POINT_KINDS"),
    "hierarchy": ("HierarchyWorld", "NUM_ATTRIBUTES", "Tree"),
    "levels": (
        "LEVELS",
        "LEVELS_AND_OTHER",
        "OTHER",
        "basic_depth",
        "held_out_leaves",
        "level_depths",
        "level_triplet_set",
        "sample_level_triplets",
        "split_per_category",
        "triplet_levels",
    ),
    "wordnet": (
        "Synset",
        "WORDNET_DIR",
        "read_synset",
        "synset_name",
        "synset_offset",
        "wordnet_tree",
    ),
    "rendering": (
        "composite",
        "draw_points",
        "fill_coverage",
        "fill_polygons",
        "fit_to_canvas",
        "grating",
        "pixel_centres",
        "polygon_signed_distance",
        "stroke_circles",
        "stroke_coverage",
        "stroke_polygons",
        "stroke_segments",
    ),
    # The command-line `main` and its `WORLDS` list stay in `alignjax.data.figures`.
    "figures": (
        "gaussian_mixture_figure",
        "geoclidean_figure",
        "hierarchy_figure",
        "quadrilaterals_figure",
    ),
}
_EXPORTS = {name: module for module, names in _MODULE_EXPORTS.items() for name in names}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'alignjax.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"alignjax.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
