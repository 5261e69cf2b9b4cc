"""``alignjax fit alignet`` on real images: Fashion-MNIST written as a PNG folder and as
ArrayRecord with PNG bytes, run through the same chain as ``alignjax run alignet`` with a
tiny student; a big_vision student and a features-file teacher; bad input."""

import io
import json

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from alignjax import cli, models, runner
from alignjax import config as config_lib
from alignjax.data import observers, simulated, tfds_builders
from alignjax.data.fashion_mnist import CLASS_NAMES, FASHION_MNIST_DIR, load_fashion_mnist
from alignjax.data.image_files import ImageFilesConfig
from alignjax.experiments import alignet as experiment
from alignjax.methods import alignet
from alignjax.models import encoders

pytestmark = pytest.mark.skipif(
    not FASHION_MNIST_DIR.exists(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)
PER_CLASS = 30
HUMAN_ITEMS = 90
SIZE = (16, 16)
# The tiny preset, shorter still, on one device (see test_experiments_alignet.py).
FAST = [
    *(
        f"{stage}.{key}"
        for stage in ("teacher_train", "student_pretrain", "student_train")
        for key in ("mesh.data=1", "progress_bar=false")
    ),
    "teacher_train.num_steps=30",
    "teacher_train.warmup_steps=5",
    "student_pretrain.num_steps=30",
    "student_pretrain.warmup_steps=5",
    "pretraining.batch_size=32",
    "uncertainty_distillation.train.num_steps=100",
    "sampling.num_clusters=6",
    "sampling.num_triplets=1024",
    "sampling.num_test_triplets=300",
    "student_train.num_steps=40",
    "student_train.warmup_steps=5",
    "student_train.checkpoint_every=20",
    "distillation.batch_size=32",
    "data.evaluation_images=200",
    "data.levels_per_level=100",
]


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Fashion-MNIST test images (PER_CLASS per class) as a folder and as ArrayRecord, and
    simulated THINGS-format triplets over HUMAN_ITEMS of them with an item map."""
    root = tmp_path_factory.mktemp("fashion")
    test = load_fashion_mnist("test")
    rng = np.random.default_rng(0)
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(test["label"] == c), PER_CLASS, replace=False)
            for c in range(10)
        ]
    )
    folder_names = [name.replace("/", "-") for name in CLASS_NAMES]
    for name in folder_names:
        (root / "images" / name).mkdir(parents=True)
    paths = []
    for i in chosen:
        c = int(test["label"][i])
        path = f"{folder_names[c]}/{i:05d}.png"
        (root / "images" / path).write_bytes(_png(test["image"][i]))
        paths.append(path)
    # The folder's image order: classes by name, then files by name.
    order = sorted(range(len(paths)), key=lambda k: (paths[k].split("/")[0], paths[k]))
    paths = [paths[k] for k in order]
    labels = test["label"][chosen[order]]
    tfds_builders.write_image_set(
        {
            "train": lambda: (
                {"image": _png(test["image"][i]), "label": int(test["label"][i])}
                for i in chosen[order]
            )
        },
        name="fashion_mnist_png",
        data_dir=root / "tfds",
    )
    # People who see the documented superordinate -> class hierarchy.
    items = np.sort(rng.choice(len(paths), HUMAN_ITEMS, replace=False))
    world = simulated.fashion_mnist_world()
    leaves = np.array([world.tree.index(CLASS_NAMES[c]) for c in labels[items]])
    judge = simulated.observer(simulated.leaf_similarity(world), leaves, 0.3)
    humans = observers.simulate_triplet_dataset(
        judge, n_train=1500, n_validation=200, n_test=300, seed=1
    )
    triplets = np.concatenate(
        [humans.train.indices, humans.validation.indices, humans.test.indices]
    )
    (root / "triplets.txt").write_text("".join(f"{a} {b} {c}\n" for a, b, c in triplets))
    (root / "items.txt").write_text("".join(f"{paths[k]}\n" for k in items))
    (root / "item_rows.txt").write_text("".join(f"{k}\n" for k in items))
    # A teacher's features in image order: the images' pixels, pooled 4 x 4 (a weak teacher).
    pixels = test["image"][chosen[order], ..., 0].astype(np.float32) / 255
    np.save(root / "teacher.npy", pixels.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(-1, 49))
    return root


def _fit(config, workdir):
    """What ``alignjax fit alignet`` does: check the work directory, run the chain."""
    path = runner.prepare_workdir(workdir, config, experiment="alignet")
    return alignet.run(config, path)


def _student_npz(path, config):
    student = encoders.build_encoder(config.student, (*SIZE, 3))
    models.save_big_vision_npz(student, path)
    return str(path)


def test_a_folder_with_human_triplets_a_features_teacher_and_a_big_vision_student(files, tmp_path):
    data = ImageFilesConfig(
        image_folder=str(files / "images"),
        image_size=SIZE,
        triplets=str(files / "triplets.txt"),
        item_images=str(files / "items.txt"),
    )
    config = experiment.files_config(
        "tiny",
        data,
        teacher_features=str(files / "teacher.npy"),
        student_checkpoint=_student_npz(tmp_path / "base.npz", experiment.get_config("tiny")),
    )
    config = config_lib.apply_overrides(config, [*FAST, "variants=alignet,unalignet"])
    metrics = _fit(config, tmp_path / "run")
    assert set(metrics) >= {"base", "alignet", "unalignet", "teacher", "teacher_ud"}
    aligned = metrics["alignet"]
    for name in (
        "odd_one_out/humans",
        "dot/odd_one_out/alignet_teacher",
        "odd_one_out/levels/coarse",
        "neighbour_preservation",
        "few_shot/logistic/3",
        "anomaly_auc",
    ):
        assert 0.0 <= aligned[name] <= 1.0, name
    # Single human choices carry no probabilities: no noise ceiling.
    assert "noise_ceiling/humans" not in aligned
    ud = metrics["uncertainty_distillation"]
    assert ud["aligned/validation_kl"] < ud["untransformed/validation_kl"]
    run = tmp_path / "run"
    # The distilled student round-trips through load_big_vision_npz.
    student = models.ViT("mu/8", image_size=SIZE, depth=1, head_dim=32, rngs=nnx.Rngs(9))
    models.load_big_vision_npz(student, run / "alignet" / "student.npz")
    assert (run / "alignet" / "student" / "checkpoints").is_dir()
    report = (run / "report.md").read_text()
    assert "Your data: 300 images of" in report and "200 are held out" in report
    assert "| AligNet student |" in report and "alignet/student.npz" in report
    # A run with another config never takes over the work directory.
    other = config_lib.apply_overrides(config, ["sampling.num_triplets=2048"])
    with pytest.raises(runner.UsageError, match="differs in: sampling.num_triplets"):
        _fit(other, run)


def test_the_command_on_array_record_without_human_triplets_trains_both_backbones(
    files, tmp_path, capsys
):
    # The whole command: flags, config, work directory, run.json and metrics.json.
    argv = ["fit", "alignet", "--tfds", "fashion_mnist_png", "--tfds-data-dir", str(files / "tfds")]
    argv += ["--image-size", str(SIZE[0]), "--preset", "tiny", "--workdir", str(tmp_path / "run")]
    assert cli.main([*argv, *(part for o in FAST for part in ("--set", o))]) == 0
    assert "report: " in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"
    assert set(metrics) >= {"base", "unalignet", "teacher"} and "alignet" not in metrics
    assert metrics["uncertainty_distillation"]["human_triplets"] is False
    assert "few_shot/logistic/3" in metrics["unalignet"]
    assert "odd_one_out/humans" not in metrics["unalignet"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "No human triplets were given: the teacher stays untransformed" in report
    for stage in ("teacher", "student_base", "unalignet/student"):
        assert (tmp_path / "run" / stage / "checkpoints").is_dir(), stage


def test_bad_files_are_named(files, tmp_path):
    base = ImageFilesConfig(image_folder=str(files / "images"), image_size=SIZE)
    np.save(tmp_path / "short.npy", np.zeros((299, 4), np.float32))
    config = config_lib.apply_overrides(
        experiment.files_config("tiny", base, teacher_features=str(tmp_path / "short.npy")), FAST
    )
    with pytest.raises(ValueError, match="short.npy: 299 rows of features for 300 images"):
        alignet.run(config, tmp_path / "a")
    bad = files / "images" / "Bag" / "zz-broken.png"
    bad.write_bytes(b"not a png")
    try:
        config = config_lib.apply_overrides(experiment.files_config("tiny", base), FAST)
        with pytest.raises(ValueError, match=f"{bad}: cannot decode the image"):
            alignet.run(config, tmp_path / "b")
    finally:
        bad.unlink()
    checkpoint = tmp_path / "wrong.npz"
    models.save_big_vision_npz(
        models.ViT("mu/8", image_size=SIZE, depth=2, rngs=nnx.Rngs(0)), checkpoint
    )
    config = config_lib.apply_overrides(
        experiment.files_config(
            "tiny",
            base,
            teacher_features=str(files / "teacher.npy"),
            student_checkpoint=str(checkpoint),
        ),
        FAST,
    )
    with pytest.raises(ValueError, match=f"{checkpoint}: checkpoint has .* parameter"):
        alignet.run(config, tmp_path / "c")
