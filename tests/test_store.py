"""Slice store writer/reader and the two Datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_synthetic_store

from mri_harmonic.data.datasets import PairedSliceDataset, UnpairedSliceDataset, to_network, to_unit
from mri_harmonic.data.store import SliceStore
from mri_harmonic.errors import UserInputError


def test_store_roundtrip(synthetic_store):
    store = SliceStore(synthetic_store)
    assert store.modalities == ["flair", "t1"] and store.image_size == (32, 32)
    assert set(store.splits) == {"train", "val", "test"}
    arr = store.array("train", "flair")
    assert isinstance(arr, np.memmap) and arr.shape == (12, 32, 32)
    man = store.split_manifest("train")
    assert list(man["row"]) == list(range(12))
    assert store.meta["splits"]["train"] == {"n_slices": 12, "n_subjects": 4}


def test_missing_split_and_modality_errors(synthetic_store):
    store = SliceStore(synthetic_store)
    with pytest.raises(UserInputError, match="no slices in split 'holdout'"):
        store.require(split="holdout")
    with pytest.raises(UserInputError, match="no modality 't2'"):
        UnpairedSliceDataset(store, "flair", "t2")


def test_not_a_store_and_incomplete(tmp_path, synthetic_store):
    with pytest.raises(UserInputError, match="not a slice store"):
        SliceStore(tmp_path)
    meta = json.loads((synthetic_store / "store.json").read_text())
    meta["complete"] = False
    (synthetic_store / "store.json").write_text(json.dumps(meta))
    with pytest.raises(UserInputError, match="not a complete slice store"):
        SliceStore(synthetic_store)


def test_rewrite_replaces_atomically(tmp_path):
    path = make_synthetic_store(tmp_path / "s", seed=0)
    before = np.array(SliceStore(path).array("train", "flair"))
    make_synthetic_store(tmp_path / "s", seed=1)
    after = np.array(SliceStore(path).array("train", "flair"))
    assert not np.array_equal(before, after)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folders left behind


def test_unpaired_dataset_range_and_shuffle(synthetic_store):
    ds = UnpairedSliceDataset(synthetic_store, "flair", "t1", seed=3)
    item = ds[0]
    assert item["A"].shape == (1, 32, 32) and item["A"].dtype == torch.float32
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    raw = SliceStore(synthetic_store).array("train", "flair")[item["A_row"]]
    assert torch.allclose(to_unit(item["A"])[0], torch.from_numpy(raw.astype(np.float32)))
    rows0 = [ds[i]["B_row"] for i in range(len(ds))]
    ds.set_epoch(1)
    rows1 = [ds[i]["B_row"] for i in range(len(ds))]
    assert rows0 != rows1
    ds.set_epoch(0)
    assert rows0 == [ds[i]["B_row"] for i in range(len(ds))]


def test_disjoint_halves(synthetic_store):
    store = SliceStore(synthetic_store)
    ds = UnpairedSliceDataset(store, "flair", "t1", disjoint_halves=True)
    man = store.split_manifest("train").set_index("row")
    subj_a = set(man.loc[ds.rows_a, "subject"])
    subj_b = set(man.loc[ds.rows_b, "subject"])
    assert subj_a and subj_b and not subj_a & subj_b


def test_paired_dataset_identity(synthetic_store):
    ds = PairedSliceDataset(synthetic_store, "test")
    item = ds[5]
    assert set(item) >= {"flair", "t1", "mask", "seg", "subject", "slice_index", "row"}
    assert item["mask"].dtype == torch.bool and item["seg"].dtype == torch.int64
    assert item["row"] == 5 and item["subject"].startswith("S2")


def test_to_network_roundtrip():
    x = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert torch.allclose(to_unit(to_network(x))[0], torch.from_numpy(x))
