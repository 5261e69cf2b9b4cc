"""Readers for triplet files, feature matrices and image folders; every bad input named."""

import pathlib

import numpy as np
import pytest

from alignjax.data.readers import (
    read_features,
    read_item_images,
    read_levels,
    read_things_categories,
    read_triplets,
)

THINGS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "things"


def _write(path, text):
    path.write_text(text)
    return path


def test_things_triplet_file():
    path = THINGS / "triplets_things_test10_sample50k.txt"
    if not path.exists():
        pytest.skip(f"THINGS sample triplets not found at {path}")
    triplets = read_triplets(path, n_items=1854)
    assert triplets.indices.shape == (50_000, 3) and triplets.n_items == 1854
    np.testing.assert_array_equal(triplets.indices[:2], [[470, 1710, 1685], [1400, 1566, 1035]])
    np.testing.assert_array_equal(triplets.indices, np.loadtxt(path, dtype=np.int64))


def test_text_and_npy_triplets_agree(tmp_path):
    text = _write(tmp_path / "t.txt", "# odd one out last\n0 1 2\n\n3,4,0\n  5\t1  2 \n")
    expected = [[0, 1, 2], [3, 4, 0], [5, 1, 2]]
    np.testing.assert_array_equal(read_triplets(text).indices, expected)
    np.save(tmp_path / "t.npy", np.array(expected, dtype=np.int32))
    np.testing.assert_array_equal(read_triplets(tmp_path / "t.npy", n_items=6).indices, expected)


@pytest.mark.parametrize(
    ("content", "n_items", "message"),
    [
        ("0 1 2\n3 4\n", None, r"bad.txt: row 1 \(line 2\) has 2 columns, expected 3"),
        ("0 1 2\n\n3 4 5 6\n", None, r"bad.txt: row 1 \(line 3\) has 4 columns"),
        ("0 1 2\n3 x 5\n", None, r"bad.txt: row 1 \(line 2\) holds a non-integer index"),
        ("0 1 2\n3 4 9\n", 9, r"bad.txt: row 1 \(line 2\) has an index that is not in \[0, 9\)"),
        (
            "0 1 2\n3 -4 5\n",
            None,
            r"bad.txt: row 1 \(line 2\) has an index that is not non-negative",
        ),
        (
            "# header\n0 1 2\n7 3 7\n",
            None,
            r"bad.txt: row 1 \(line 3\) repeats an object: \[7, 3, 7\]",
        ),
        ("\n# only a comment\n", None, r"bad.txt: the file is empty"),
    ],
)
def test_bad_text_triplets_name_file_and_row(tmp_path, content, n_items, message):
    with pytest.raises(ValueError, match=message):
        read_triplets(_write(tmp_path / "bad.txt", content), n_items=n_items)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            np.zeros((4, 2), np.int64),
            r"bad.npy: triplets must have shape \[n, 3\]; got shape \(4, 2\)",
        ),
        (np.zeros((4, 3)), "bad.npy: triplet indices must be integers"),
        (np.zeros((0, 3), np.int64), "bad.npy: the file holds no triplets"),
        (np.array([[0, 1, 2], [1, 1, 2]]), r"bad.npy: row 1 repeats an object"),
        (np.array([[0, 1, 2], [1, 5, 2]]), r"bad.npy: row 1 has an index that is not in \[0, 5\)"),
    ],
)
def test_bad_npy_triplets_name_file_and_row(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=message):
        read_triplets(tmp_path / "bad.npy", n_items=5)


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="triplet file not found: .*nope.txt"):
        read_triplets(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="feature file not found: .*nope.npy"):
        read_features(tmp_path / "nope.npy")


def test_features_text_and_npy(tmp_path):
    features = np.random.default_rng(0).normal(size=(5, 3))
    np.savetxt(tmp_path / "f.txt", features, delimiter="\t")
    np.testing.assert_allclose(read_features(tmp_path / "f.txt"), features, rtol=1e-15)
    np.save(tmp_path / "f.npy", features.astype(np.float32))
    out = read_features(tmp_path / "f.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, features.astype(np.float32))
    spose = THINGS / "spose_embedding_49d_sorted.txt"
    if spose.exists():
        embedding = read_features(spose)
        assert embedding.shape == (1854, 49)
        np.testing.assert_allclose(embedding[0, :3], [0.0234, 0.2249, 2.6348], atol=1e-4)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1 2 3\n4 5\n", r"bad.txt: row 1 \(line 2\) has 2 columns; row 0 has 3"),
        ("1 2\n3 nan\n", r"bad.txt: row 1 \(line 2\) holds NaN or infinite features"),
        ("1 2\n3 abc\n", r"bad.txt: row 1 \(line 2\) holds a value that is not a number"),
        ("", "bad.txt: the file is empty"),
    ],
)
def test_bad_text_features_name_file_and_row(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        read_features(_write(tmp_path / "bad.txt", content))


def test_bad_npy_features(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.0, 1.0], [2.0, 3.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="nan.npy: row 2 holds NaN"):
        read_features(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", np.zeros(4))
    with pytest.raises(ValueError, match=r"flat.npy: features must have shape \[n_items, d\]"):
        read_features(tmp_path / "flat.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    with pytest.raises(ValueError, match="empty.npy: the file holds no features"):
        read_features(tmp_path / "empty.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="junk.npy: not a .npy file"):
        read_features(tmp_path / "junk.npy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "nan.npy").read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.npy: not a readable .npy array"):
        read_features(tmp_path / "cut.npy")
    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npy: not a readable .npy array"):
        read_features(tmp_path / "objects.npy")
    with pytest.raises(ValueError, match=f"{tmp_path}: is a directory; expected a feature file"):
        read_features(tmp_path)


def test_binary_triplet_file_is_named(tmp_path):
    (tmp_path / "triplets.txt").write_bytes(b"0 1 2\n\x89PNG\xff\xfe\n")
    with pytest.raises(ValueError, match="triplets.txt: line 2 is not UTF-8 text"):
        read_triplets(tmp_path / "triplets.txt")


def test_item_images_by_index_and_by_name(tmp_path):
    names = ["ant/0.png", "ant/1.png", "cat/0.png"]
    (tmp_path / "map.txt").write_text("2\nant/1.png\n0\n")
    np.testing.assert_array_equal(read_item_images(tmp_path / "map.txt", names, 3), [2, 1, 0])
    for text, message in [
        ("0\n3\n", "line 2 names image 3, but there are 3 images"),
        ("0\ndog.png\n", "line 2 names 'dog.png', which is no image index and no image file"),
        ("0\nant/0.png\n", "line 2 names the image of line 1 again"),
    ]:
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(ValueError, match=message):
            read_item_images(tmp_path / "bad.txt", names)
    (tmp_path / "short.txt").write_text("0\n1\n")
    with pytest.raises(ValueError, match="short.txt: 2 items, but the triplets index 3"):
        read_item_images(tmp_path / "short.txt", names, 3)


def test_levels_file(tmp_path):
    (tmp_path / "levels.txt").write_text("fine\ncoarse\nfine\n")
    codes, names = read_levels(tmp_path / "levels.txt", 3)
    assert names == ("coarse", "fine") and codes.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="levels.txt: 3 level names for 4 triplets"):
        read_levels(tmp_path / "levels.txt", 4)


def test_things_category_table(tmp_path):
    table = (
        "Word\tDefinition\tanimal\tfood\r\n"
        "aardvark\ta mammal\t1\t\r\n"
        "apple\ta fruit\t\t1\r\n"
        "\t\t1\t1\r\n"  # the column totals
    )
    (tmp_path / "categories.tsv").write_text(table)
    membership, names = read_things_categories(tmp_path / "categories.tsv", 2)
    assert names == ("animal", "food")
    assert membership.tolist() == [[True, False], [False, True]]
    with pytest.raises(ValueError, match="2 concept rows, expected 3"):
        read_things_categories(tmp_path / "categories.tsv", 3)
    (tmp_path / "bad.tsv").write_text(table.replace("\t1\t\r\n", "\tyes\t\r\n", 1))
    with pytest.raises(ValueError, match="row 1 must hold 2 0/1 category columns"):
        read_things_categories(tmp_path / "bad.tsv", 2)
