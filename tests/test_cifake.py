"""The data layer against the real CIFAKE files and their manifest."""

from __future__ import annotations

import csv

import numpy as np

from fakelens.data.dataset import load_labelled, official_test_and_dedup_mask, train_val
from fakelens.data.info import dataset_info


def manifest(cifake):
    with open(cifake / "manifest.csv", newline="") as handle:
        return {f"{r['split']}/{r['label']}/{r['file']}": r for r in csv.DictReader(handle)}


def test_hashes_and_labels_match_the_manifest(cifake, cifake_subset):
    rows = manifest(cifake)
    data = load_labelled(cifake_subset, quiet=True)
    assert len(data.names) == len(set(data.names)) and not data.failures
    for name, sha, is_ai in zip(data.names, data.sha256, data.is_ai):
        assert rows[name]["sha256"] == sha
        assert bool(is_ai) == (rows[name]["label"] == "FAKE")
    assert data.images.shape[1:] == (32, 32, 3)


def test_no_duplicate_crosses_train_and_validation(cifake_subset):
    data = load_labelled(cifake_subset, quiet=True)
    train, val = train_val(data, 0.1, seed=42)
    assert not set(train.sha256) & set(val.sha256)
    assert abs(len(val.names) - 0.1 * len(data.split("train").names)) < 25


def test_dedup_test_removes_exactly_the_test_files_whose_bytes_are_in_train(cifake, cifake_subset):
    rows = manifest(cifake)
    data = load_labelled(cifake_subset, quiet=True)
    test, keep = official_test_and_dedup_mask(data)
    train_hashes = {rows[n]["sha256"] for n in data.split("train").names}
    expected = np.array([rows[n]["sha256"] not in train_hashes for n in test.names])
    assert np.array_equal(keep, expected) and (~keep).sum() >= 20


def test_data_info_counts_and_cross_split_duplicates(cifake_subset):
    info = dataset_info(cifake_subset, quiet=True)
    assert info["counts"]["train"]["real"] == 1000 and info["counts"]["test"]["real"] == 200
    assert info["sizes"] == {"32x32": info["total"]} and info["formats"] == {"JPEG": info["total"]}
    assert info["groups_across_train_and_test"] == 20
    assert not info["unreadable"]


def test_reencoding_gives_every_class_the_same_container(tmp_path):
    from conftest import encode, random_image

    root = tmp_path / "mixed"
    for split in ("train", "test"):
        for label, fmt in (("REAL", "JPEG"), ("FAKE", "PNG")):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"{i}.{fmt.lower()}").write_bytes(encode(random_image(i, (48, 48)), fmt))
    plain = load_labelled(root, quiet=True)
    reencoded = load_labelled(root, reencode_quality=90, quiet=True)
    assert plain.key == reencoded.key  # the same data, decoded two ways
    assert list(plain.sha256) == list(reencoded.sha256)  # hashes stay those of the files
    png = [i for i, name in enumerate(plain.names) if name.endswith(".png")]
    assert png and all(not np.array_equal(plain.images[i], reencoded.images[i]) for i in png)
