"""Hallucination stress test pieces: tumour-prevalence sampling of the training Dataset (exact shares, seeded,
errors), the trainer passing it through, the evaluation's healthy / tumour slice filter, and the rates of
mri_harmonic/evaluation/hallucination.py on constructed slices and hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_evaluate import train_tiny
from test_tumour import TISSUE, _slice

from mri_harmonic.data.datasets import (
    TUMOUR_MIN_PIXELS,
    UnpairedSliceDataset,
    prevalence_counts,
    slice_kinds,
    slice_tumour_pixels,
)
from mri_harmonic.errors import UserInputError
from mri_harmonic.evaluation.compare import paired_interval
from mri_harmonic.evaluation.hallucination import (
    HallucinationConfig,
    hallucination_masks,
    paired_rate_difference,
    rate_table,
    subject_counts,
)
from mri_harmonic.evaluation.tumour import TumourCheckConfig, tumour_fidelity

SIZE = 32


def make_mixed_store(path, healthy: int = 10, tumour: int = 10, tiny: int = 3, test_healthy: int = 4, test_tumour: int = 3):
    """A store whose train split holds ``healthy`` slices without label, ``tumour`` slices with a 21-pixel label
    and ``tiny`` with a 4-pixel label (neither kind); the test split ``test_healthy`` + ``test_tumour`` slices of two
    subjects. Pixel counts are exact, so every expected count is known."""
    from mri_harmonic.data.store import write_store

    yy, xx = np.mgrid[:SIZE, :SIZE]
    brain = np.hypot(yy - 16, xx - 16) < 12
    arrays, rows, meta = {}, [], {}
    for split, kinds in (("train", ["h"] * healthy + ["t"] * tumour + ["x"] * tiny),
                         ("test", ["h"] * test_healthy + ["t"] * test_tumour)):
        named = {m: [] for m in ("flair", "t1", "mask", "seg")}
        for r, kind in enumerate(kinds):
            seg = np.zeros((SIZE, SIZE), np.uint8)
            if kind == "t":
                seg[14:17, 12:19] = 2  # 21 px
            elif kind == "x":
                seg[15:17, 15:17] = 2  # 4 px
            named["flair"].append(np.where(brain, 0.5 + 0.4 * (seg > 0), 0).astype(np.float16))
            named["t1"].append(np.where(brain, 0.7 - 0.3 * (seg > 0), 0).astype(np.float16))
            named["mask"].append(brain.astype(np.uint8))
            named["seg"].append(seg)
            subject = f"{split}{r % 2}"
            meta[subject] = {"split": split, "half": r % 2}
            rows.append(dict(split=split, row=r, subject=subject, slice_index=r, brain_fraction=round(float(brain.mean()), 6),
                             tumour_fraction=round(float((seg > 0).sum() / brain.sum()), 6), half=r % 2))
        arrays[split] = {k: np.stack(v) for k, v in named.items()}
    return write_store(path, arrays=arrays, manifest=pd.DataFrame(rows), subjects=meta, config={"synthetic": True},
                       config_hash="mixed0000000", modalities=["flair", "t1"], extra_meta={"unpaired_halves": False})


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    return make_mixed_store(tmp_path_factory.mktemp("mixed") / "store")


def _seg_pixels(ds, side):
    seg = np.asarray(ds.store.array("train", "seg"))
    return (seg[getattr(ds, f"rows_{side}")] > 0).sum(axis=(1, 2))


# ---- prevalence sampling ---------------------------------------------------------------------------------------------
def test_prevalence_counts_exact_shares_and_limits():
    assert prevalence_counts(100, 100, 0.6) == (66, 99)  # 3 : 2 as often as the 100 tumorous allow -> 99 / 165 = 0.6
    assert prevalence_counts(10, 4, 0.0) == (10, 0) and prevalence_counts(10, 4, 1.0) == (0, 4)
    assert prevalence_counts(7, 7, 0.5) == (7, 7)
    h, t = prevalence_counts(50, 50, 0.3333)  # not a fraction of denominator <= 1000: the largest subset within 0.01
    assert abs(t / (h + t) - 0.3333) <= 0.01 and h == 50
    assert prevalence_counts(20, 0, 0.6) is None and prevalence_counts(0, 5, 0.0) is None
    assert prevalence_counts(100, 1, 0.6) is None  # one tumorous slice cannot make 60 % of anything


def test_manifest_tumour_pixels_match_the_labels(mixed_store):
    from mri_harmonic.data.store import SliceStore

    st = SliceStore(mixed_store)
    man = st.split_manifest("train")
    seg = np.asarray(st.array("train", "seg"))[man["row"].to_numpy()]
    assert (slice_tumour_pixels(man, st.image_size) == (seg > 0).sum(axis=(1, 2))).all()
    healthy, tumorous = slice_kinds(man, st.image_size)
    assert healthy.sum() == 10 and tumorous.sum() == 10  # the 4-pixel slices are neither
    assert TUMOUR_MIN_PIXELS == TumourCheckConfig().min_lesion_pixels  # the same "tumorous" as the tumour checks


def test_dataset_draws_exact_shares_per_domain(mixed_store):
    natural = UnpairedSliceDataset(mixed_store, "flair", "t1")
    assert len(natural.rows_a) == len(natural.rows_b) == 23
    ds = UnpairedSliceDataset(mixed_store, "flair", "t1", tumour_prevalence_a=0.6, tumour_prevalence_b=0.0, seed=3)
    px_a, px_b = _seg_pixels(ds, "a"), _seg_pixels(ds, "b")
    assert len(px_a) == 15 and (px_a >= 20).sum() == 9 and (px_a == 0).sum() == 6  # 9 / 15 = 0.6, nothing in between
    assert len(px_b) == 10 and (px_b == 0).all()
    assert ds.tumour_shares == {"A": 0.6, "B": 0.0} and len(ds) == 15
    again = UnpairedSliceDataset(mixed_store, "flair", "t1", tumour_prevalence_a=0.6, tumour_prevalence_b=0.0, seed=3)
    assert (again.rows_a == ds.rows_a).all()  # seeded
    others = [UnpairedSliceDataset(mixed_store, "flair", "t1", tumour_prevalence_a=0.6, seed=s).rows_a for s in range(4, 9)]
    assert any(set(o) != set(ds.rows_a) for o in others)  # and the seed matters
    item = ds[0]
    assert item["A_row"] in set(ds.rows_a.tolist()) and item["A"].shape == (1, SIZE, SIZE)


def test_dataset_refuses_a_prevalence_the_split_cannot_give(tmp_path):
    store = make_mixed_store(tmp_path / "store", tumour=0)
    with pytest.raises(UserInputError) as err:
        UnpairedSliceDataset(store, "t1", "flair", tumour_prevalence_b=0.6)
    msg = str(err.value)
    assert "data.tumour_prevalence_b" in msg and "0 tumorous" in msg and "10 healthy" in msg and "\n" not in msg
    assert len(UnpairedSliceDataset(store, "t1", "flair", tumour_prevalence_b=0.0).rows_b) == 10


@pytest.mark.parametrize("key, value", [("tumour_prevalence_a", 1.5), ("tumour_prevalence_b", -0.1), ("tumour_min_pixels", 0)])
def test_config_rejects_bad_prevalence_keys(key, value):
    from mri_harmonic.config import from_dict
    from mri_harmonic.training.config import TrainConfig

    with pytest.raises(UserInputError, match=f"data.{key}"):
        from_dict(TrainConfig, {"data": {key: value}})


def test_trainer_trains_on_the_prevalence_subset(mixed_store, tmp_path):
    import yaml

    from mri_harmonic.config import from_dict
    from mri_harmonic.training.config import TrainConfig
    from mri_harmonic.training.trainer import plan_run

    cfg = from_dict(TrainConfig, {"data": {"tumour_prevalence_a": 0.6, "tumour_prevalence_b": 0.0}})
    assert plan_run(mixed_store, "flair2t1", cfg).dataset_items == 15  # max(15 of A, 10 of B)
    run = train_tiny(mixed_store, tmp_path / "run", data={"tumour_prevalence_a": 0.0, "tumour_prevalence_b": 0.6})
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert saved["tumour_prevalence_a"] == 0.0 and saved["tumour_prevalence_b"] == 0.6


# ---- the evaluation's slice filter -------------------------------------------------------------------------------------
def test_evaluation_scores_only_the_chosen_slices(mixed_store, tmp_path):
    from mri_harmonic.evaluation.evaluate import compute_evaluation

    run = train_tiny(mixed_store, tmp_path / "run")
    seen = {}
    for slices in ("all", "healthy", "tumour"):
        res = compute_evaluation([str(run)], mixed_store, "test", "flair2t1", device="cpu", progress=False, slices=slices)
        seen[slices] = res.tumour[res.tumour["run"] == "run"]
    assert len(seen["all"]) == 7 and len(seen["healthy"]) == 4 and len(seen["tumour"]) == 3
    assert (seen["healthy"]["n_tumour_pixels"] == 0).all() and (seen["tumour"]["n_tumour_pixels"] >= 20).all()
    with pytest.raises(UserInputError, match="`slices`"):
        compute_evaluation([str(run)], mixed_store, "test", "flair2t1", device="cpu", progress=False, slices="lesions")
    no_tumour = make_mixed_store(tmp_path / "healthy-only", test_tumour=0)
    with pytest.raises(UserInputError, match="no such slice"):
        compute_evaluation([str(run)], no_tumour, "test", "flair2t1", device="cpu", progress=False, slices="tumour")


# ---- the rates on constructed slices -------------------------------------------------------------------------------
def _record(pred, target, brain, seg, subject, seed=0, group="m", modality="flair"):
    rec, lesions = tumour_fidelity(pred, target, brain, seg, modality)
    tags = {"subject": subject, "slice_index": 0, "group": group, "run": f"{group}-s{seed}", "seed": seed, "direction": "t12flair"}
    return {**tags, **rec}, [{**tags, **les} for les in lesions]


def _blob(img, radius, contrast, centre=(32, 24)):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    disc = np.hypot(yy - centre[0], xx - centre[1]) <= radius
    out = img.copy()
    out[disc] = np.clip(out[disc] + contrast, 0, 1)
    return out, disc


def test_identical_output_invents_nothing():
    rows = []
    for k in range(4):
        target, brain, seg = _slice("flair", seed=k, tumour=False)
        rows.append(_record(target, target, brain, seg, f"S{k}")[0])
    table = rate_table(pd.DataFrame(rows), None, rates=("invented_image", "invented_pixel"))
    assert (table["estimate"] == 0).all() and (table["ci_low"] == 0).all() and (table["ci_high"] == 0).all()
    assert set(table["rate"]) == {"invented_image", "invented_pixel"} and (table["n_subjects"] == 4).all()


def test_a_painted_blob_is_counted_by_its_size():
    target, brain, seg = _slice("flair", tumour=False)
    pred, disc = _blob(target, 3.0, TISSUE["flair"]["lesion"] - TISSUE["flair"]["wm"])
    n = int(disc.sum())  # 29 px
    rec, _ = _record(pred, target, brain, seg, "S0")
    assert rec["n_invented"] == 1 and abs(rec["invented_largest_pixels"] - n) <= 0.35 * n  # smoothing moves the edge
    masks = hallucination_masks(pred, target, brain, seg, "flair")
    assert masks["invented"].sum() == rec["invented_pixels"] and (masks["invented"] & disc).sum() >= 0.6 * n
    clean, _ = _record(target, target, brain, seg, "S1")
    frame = pd.DataFrame([rec, clean])
    small = subject_counts(frame, None, ["group"], HallucinationConfig(image_min_pixels=10)).set_index("subject")
    assert small.loc["S0", "invented_image_num"] == 1 and small.loc["S1", "invented_image_num"] == 0
    assert small.loc["S0", "invented_pixel_num"] == rec["invented_pixels"] and small.loc["S0", "invented_pixel_den"] == brain.sum()
    big = subject_counts(frame, None, ["group"], HallucinationConfig(image_min_pixels=rec["invented_largest_pixels"] + 1))
    assert big["invented_image_num"].sum() == 0  # a region below N does not flag the image
    table = rate_table(frame, None, ["group"], ("invented_image",), HallucinationConfig(image_min_pixels=10))
    assert table.loc[0, "estimate"] == 0.5  # one of the two subjects' single slice


def test_an_erased_lesion_is_counted():
    target, brain, seg = _slice("flair", tumour=True)
    pred = target.copy()
    pred[seg > 0] = TISSUE["flair"]["wm"]  # the lesion painted over with white matter
    rec, lesions = _record(pred, target, brain, seg, "S0")
    kept_rec, kept_lesions = _record(target, target, brain, seg, "S1")
    assert rec["n_erased"] == 1 and kept_rec["n_erased"] == 0
    table = rate_table(pd.DataFrame([rec, kept_rec]), pd.DataFrame(lesions + kept_lesions), ["group"],
                       ("erased", "tumour_pixels_lost", "wrong_direction")).set_index("rate")
    assert table.loc["erased", "estimate"] == 0.5 and table.loc["tumour_pixels_lost", "estimate"] == 0.5
    assert table.loc["erased", "events"] == 1 and table.loc["erased", "units"] == 2
    assert table.loc["tumour_pixels_lost", "units"] == 2 * int((seg > 0).sum())
    assert table.loc["wrong_direction", "estimate"] == 0
    masks = hallucination_masks(pred, target, brain, seg, "flair")
    assert (masks["erased"] == (seg > 0)).all() and not masks["kept"].any()


# ---- aggregation and intervals on hand-made tables ---------------------------------------------------------------
def _table(rate_by_subject_seed, group="m", slices_per_subject=4):
    """Per-slice records whose ``invented_image`` rate per subject x seed is given (``k`` of 4 slices flagged)."""
    rows = []
    for (subject, seed), k in rate_by_subject_seed.items():
        for z in range(slices_per_subject):
            hit = z < k
            rows.append({"subject": subject, "slice_index": z, "group": group, "run": f"{group}-s{seed}", "seed": seed,
                         "direction": "t12flair", "scored": True, "invented_largest_pixels": 30 if hit else 0,
                         "invented_pixels": 30 if hit else 0, "brain_pixels": 1000, "n_erased": 0, "n_conspicuous": 0,
                         "n_wrong_direction": 0, "n_lesions": 0})
    return pd.DataFrame(rows)


def test_pooled_rate_is_the_subject_by_seed_mean_with_compare_s_interval():
    flagged = {(f"S{i}", s): (i + s) % 5 for i in range(6) for s in range(3)}
    frame = _table(flagged)
    row = rate_table(frame, None, ["group"], ("invented_image",)).iloc[0]
    mat = np.array([[((i + s) % 5) / 4 for s in range(3)] for i in range(6)])  # 4 slices per subject
    ref = paired_interval(mat)
    assert row["estimate"] == pytest.approx(mat.mean()) and (row["n_subjects"], row["n_seeds"]) == (6, 3)
    assert row["ci_low"] == pytest.approx(max(0.0, ref["ci_low"])) and row["ci_high"] == pytest.approx(min(1.0, ref["ci_high"]))
    assert 0 <= row["ci_low"] <= row["estimate"] <= row["ci_high"] <= 1
    assert row["events"] == sum(min(k, 4) for k in flagged.values()) and row["units"] == 6 * 3 * 4


def test_paired_difference_subtracts_same_subject_and_seed():
    a = _table({(f"S{i}", s): 3 for i in range(5) for s in range(3)}, group="harmonic")
    b = _table({(f"S{i}", s): 1 for i in range(5) for s in range(3)}, group="cyclegan")
    d = paired_rate_difference(pd.concat([a, b]), None, "harmonic", "cyclegan", rates=("invented_image",)).iloc[0]
    assert d["mean_diff"] == pytest.approx(0.5) and (d["n_subjects"], d["n_seeds"]) == (5, 3)
    assert d["ci_low"] == pytest.approx(0.5) and d["verdict"] == "worse"  # a constant difference: a zero-width interval


def test_unscored_slices_and_missing_denominators_are_left_out():
    frame = _table({("S0", 0): 2, ("S1", 0): 0})
    frame.loc[frame.index[:2], "scored"] = False  # two of S0's flagged slices have no white-matter reference
    row = rate_table(frame, None, ["group"], ("invented_image", "erased"))
    assert list(row["rate"]) == ["invented_image"]  # no conspicuous lesion anywhere: no erased rate
    assert row.iloc[0]["estimate"] == 0 and row.iloc[0]["units"] == 6
    assert math.isfinite(row.iloc[0]["ci_low"])
