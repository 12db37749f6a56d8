"""preprocess(): layouts -> identical stores, reorientation, slice->voxel mapping, splits, bad input, resume, CLI."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mri_harmonic.cli import app, main
from mri_harmonic.data.config import PreprocessConfig
from mri_harmonic.data.geometry import slice_to_source_voxel
from mri_harmonic.data.preprocess import assign_splits, partial_dir_for, preprocess, split_counts
from mri_harmonic.data.store import SliceStore
from mri_harmonic.errors import UserInputError

SHAPE = (48, 56, 40)
CFG = PreprocessConfig(in_plane_size=64, split_fractions=[0.5, 0.25, 0.25], min_brain_fraction=0.05)
NAMES = ("flair", "t1", "mask", "seg")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from mri_harmonic.data.phantom import generate_phantom

    root = tmp_path_factory.mktemp("phantoms")
    generate_phantom(root / "brats2021", subjects=4, seed=1, shape=SHAPE, layout="brats2021", workers=1, progress=False)
    for layout in ("brats2023", "msd"):
        generate_phantom(root / layout, subjects=2, seed=1, shape=SHAPE, layout=layout, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def reference_store(phantoms, tmp_path_factory):
    """The 4-subject brats2021 phantom preprocessed without interruption (workers=1)."""
    path = tmp_path_factory.mktemp("ref") / "store"
    preprocess(phantoms / "brats2021", path, CFG, workers=1, progress=False)
    return SliceStore(path)


def _same_store(a: SliceStore, b: SliceStore) -> None:
    assert a.splits == b.splits
    for split in a.splits:
        for name in NAMES:
            assert np.array_equal(a.array(split, name), b.array(split, name)), (split, name)
    cols = ["split", "row", "slice_index", "brain_fraction", "tumour_fraction", "half"]
    pd.testing.assert_frame_equal(a.manifest[cols], b.manifest[cols])


def _write_case(root, sid, shape=(20, 22, 18), affine=None, seed=0, mods=("flair", "t1"), seg=True):
    """A hand-made BraTS-2021-named subject: an ellipsoid 'brain' with smooth intensities, int16."""
    rng = np.random.default_rng(seed)
    affine = np.diag([-2.0, -2.0, 2.0, 1.0]) if affine is None else affine
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    brain = x**2 + y**2 + z**2 < 0.8
    folder = root / sid
    folder.mkdir(parents=True, exist_ok=True)
    for k, m in enumerate(mods):
        ramp = (x, y)[k % 2]  # flair ramps along voxel axis 0, t1 along axis 1
        vol = np.where(brain, 300 + 200 * (k + 1) * (ramp + 1) + rng.normal(0, 10, shape), 0).astype(np.int16)
        nib.save(nib.Nifti1Image(vol, affine), folder / f"{sid}_{m}.nii.gz")
    if seg:
        lab = np.zeros(shape, np.uint8)
        lab[8:11, 9:12, 7:10] = 2
        lab[9, 10, 8] = 4
        nib.save(nib.Nifti1Image(lab, affine), folder / f"{sid}_seg.nii.gz")
    return folder


# ---------------------------------------------------------------------------------------------------------------
def test_layouts_give_identical_stores(phantoms, tmp_path):
    cfg = PreprocessConfig(in_plane_size=64, split_fractions=[0.5, 0.5, 0.0])
    stores = {}
    for layout in ("brats2021", "brats2023", "msd"):
        data = phantoms / layout
        if layout == "brats2021":  # the first two subjects, as the other layouts hold
            data = tmp_path / "b21"
            for case in sorted((phantoms / "brats2021").glob("BraTS2021_0000[01]")):
                shutil.copytree(case, data / case.name)
        preprocess(data, tmp_path / layout, cfg, workers=1, progress=False)
        stores[layout] = SliceStore(tmp_path / layout)
    _same_store(stores["brats2021"], stores["brats2023"])
    _same_store(stores["brats2021"], stores["msd"])
    seg = np.concatenate([stores["msd"].array(s, "seg") for s in stores["msd"].splits])
    assert set(np.unique(seg)) <= {0, 1, 2, 4} and {1, 2, 4} <= set(np.unique(seg))


def test_lps_and_ras_copies_give_identical_slices(tmp_path):
    lps = _write_case(tmp_path / "lps", "S1", affine=np.array([[-2.0, 0, 0, 30], [0, -2, 0, 40], [0, 0, 2, -10], [0, 0, 0, 1]]))
    ras = tmp_path / "ras" / "S1"
    ras.mkdir(parents=True)
    for f in lps.iterdir():
        img = nib.as_closest_canonical(nib.load(f))  # same voxels in world space, stored RAS
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        nib.save(img, ras / f.name)
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[1.0, 0.0, 0.0])
    preprocess(tmp_path / "lps", tmp_path / "s_lps", cfg, workers=1, progress=False)
    preprocess(tmp_path / "ras", tmp_path / "s_ras", cfg, workers=1, progress=False)
    a, b = SliceStore(tmp_path / "s_lps"), SliceStore(tmp_path / "s_ras")
    _same_store(a, b)
    assert a.subjects["S1"]["source_orientation"] == "LPS" and b.subjects["S1"]["source_orientation"] == "RAS"
    # display orientation: in the LPS file voxel axis 0 runs right -> left and axis 1 anterior -> posterior, so the
    # flair ramp grows toward patient left and the t1 ramp toward posterior. Stored slices have columns running
    # patient left -> right and rows anterior -> posterior: flair falls along a row, t1 grows down a column.
    z = len(a.manifest) // 2
    m = a.array("train", "mask")[z] > 0
    flair, t1 = (a.array("train", k)[z].astype(np.float32) for k in ("flair", "t1"))
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    col_mean = [flair[:, c][m[:, c]].mean() for c in (cols[1], cols[-2])]
    row_mean = [t1[r][m[r]].mean() for r in (rows[1], rows[-2])]
    assert col_mean[0] > col_mean[1] + 0.5 and row_mean[1] > row_mean[0] + 0.5


def test_modalities_on_one_grid_in_another_voxel_order_are_matched(tmp_path):
    """A subject's t1 and labels stored with axis 2 reversed (the same voxels in world space, as a DICOM series
    stacked along its slice normal may be) give the store of the subject stored in one order."""
    a = _write_case(tmp_path / "one", "S1")
    b = tmp_path / "mixed" / "S1"
    shutil.copytree(a, b)
    for name in ("S1_t1.nii.gz", "S1_seg.nii.gz"):
        img = nib.load(a / name)
        flip = nib.orientations.inv_ornt_aff(np.array([[0, 1], [1, 1], [2, -1]]), img.shape)
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:, :, ::-1], img.affine @ flip), b / name)
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[1.0, 0.0, 0.0])
    preprocess(tmp_path / "one", tmp_path / "s_one", cfg, workers=1, progress=False)
    summary = preprocess(tmp_path / "mixed", tmp_path / "s_mixed", cfg, workers=1, progress=False)
    assert not summary["skipped"]
    _same_store(SliceStore(tmp_path / "s_one"), SliceStore(tmp_path / "s_mixed"))


def test_slice_pixels_map_to_their_source_voxels(reference_store):
    store = reference_store
    rng = np.random.default_rng(0)
    checked = 0
    for split in store.splits:
        man = store.split_manifest(split)
        for r in rng.choice(len(man), size=min(6, len(man)), replace=False):
            rec = man.iloc[r]
            geom = store.subjects[rec["subject"]]
            mask = store.array(split, "mask")[int(rec["row"])]
            rows, cols = np.nonzero(mask)
            for k in rng.choice(len(rows), size=5, replace=False):
                i, j = int(rows[k]), int(cols[k])
                vox = slice_to_source_voxel(geom, int(rec["slice_index"]), i, j)
                for mod in ("flair", "t1"):
                    src = np.asanyarray(nib.load(geom["sources"][mod]["path"]).dataobj)
                    lo, hi = geom["percentiles"][mod]
                    expected = np.clip((float(src[vox]) - lo) / (hi - lo), 0, 1)
                    assert float(store.array(split, mod)[int(rec["row"]), i, j]) == pytest.approx(expected, abs=1e-3)
                seg = np.asanyarray(nib.load(geom["seg_path"]).dataobj)
                assert int(store.array(split, "seg")[int(rec["row"]), i, j]) == int(seg[vox])
                checked += 1
    assert checked >= 20


def test_store_metadata_and_slice_selection(reference_store):
    store = reference_store
    assert store.image_size == (64, 64) and store.modalities == ["flair", "t1"]
    assert store.meta["dtype"] == "float16" and store.unpaired_halves is True
    man = store.manifest
    assert (man["brain_fraction"] >= CFG.min_brain_fraction).all()
    for split in store.splits:
        mask = store.array(split, "mask")
        part = store.split_manifest(split)
        np.testing.assert_allclose(part["brain_fraction"], mask.reshape(len(mask), -1).mean(1), atol=1e-6)
        flair = store.array(split, "flair")
        assert flair.min() >= 0 and flair.max() <= 1 and np.all(flair[mask == 0] == 0)
    for sid, geom in store.subjects.items():
        assert sorted(man.loc[man["subject"] == sid, "slice_index"]) == geom["kept_slices"]
        assert geom["source_orientation"] == "LPS" and geom["model_orientation"] == "RAS"
        assert len(geom["source_affine"]) == 4 and geom["source_shape"] == list(SHAPE)


def test_splits_by_subject_disjoint_and_deterministic(reference_store):
    man = reference_store.manifest
    assert (man.groupby("subject")["split"].nunique() == 1).all()
    assert (man.groupby("subject")["half"].nunique() == 1).all()
    ids = [f"S{i:03d}" for i in range(50)]
    cfg = PreprocessConfig(split_fractions=[0.7, 0.2, 0.1], split_seed=3)
    a, b = assign_splits(ids, cfg), assign_splits(list(reversed(ids)), cfg)
    assert a == b
    counts = {s: sum(v[0] == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 35, "val": 10, "test": 5}
    train_halves = [v[1] for v in a.values() if v[0] == "train"]
    assert abs(sum(train_halves) - len(train_halves) / 2) <= 0.5
    other = assign_splits(ids, PreprocessConfig(split_fractions=[0.7, 0.2, 0.1], split_seed=4))
    assert other != a
    assert split_counts(3, [0.8, 0.1, 0.1]) == [1, 1, 1] and split_counts(10, [0.8, 0.1, 0.1]) == [8, 1, 1]
    assert split_counts(2, [1.0, 0.0, 0.0]) == [2, 0, 0]


def _brats2020_half_broken(root, n_broken):
    """Eight BraTS-2020-named subjects; the test subject of an assignment over all eight, and then train subjects,
    get a truncated FLAIR (so assigning splits before dropping them leaves the test split empty)."""
    ids = [f"BraTS20_Training_{i:03d}" for i in range(1, 9)]
    for k, sid in enumerate(ids):
        _write_case(root, sid, seed=k)
    before = assign_splits(ids, PreprocessConfig())
    broken = sorted(ids, key=lambda s: (before[s][0] != "test", s))[:n_broken]
    for sid in broken:
        f = root / sid / f"{sid}_flair.nii.gz"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return ids, broken


def test_splits_are_assigned_over_the_subjects_that_survive(tmp_path):
    ids, broken = _brats2020_half_broken(tmp_path / "data", 4)
    cfg = PreprocessConfig(in_plane_size=32)
    summary = preprocess(tmp_path / "data", tmp_path / "store", cfg, workers=1, progress=False)
    assert sorted(s["subject"] for s in summary["skipped"]) == sorted(broken)
    store = SliceStore(tmp_path / "store")
    assert store.splits == ["train", "val", "test"]
    assert {s: v["subjects"] for s, v in summary["splits"].items()} == {"train": 2, "val": 1, "test": 1}
    assert set(store.subjects) == set(ids) - set(broken)


def test_a_requested_split_left_empty_is_a_one_line_error_and_the_rerun_reuses_the_work(tmp_path):
    _brats2020_half_broken(tmp_path / "data", 6)
    cfg = PreprocessConfig(in_plane_size=32)
    with pytest.raises(UserInputError, match="splits val and test would be empty") as exc:
        preprocess(tmp_path / "data", tmp_path / "store", cfg, workers=1, progress=False)
    msg = str(exc.value)
    assert "\n" not in msg and "2 of 8 subjects survived (6 skipped)" in msg and "split_fractions=[1, 0, 0]" in msg
    assert not (tmp_path / "store").exists()
    summary = preprocess(tmp_path / "data", tmp_path / "store", PreprocessConfig(in_plane_size=32, split_fractions=[1, 0, 0]),
                         workers=1, progress=False)
    assert summary["subjects_reused"] == 2 and summary["subjects_processed"] == 6
    assert SliceStore(tmp_path / "store").splits == ["train"]


def test_parallel_workers_give_the_same_store(phantoms, reference_store, tmp_path):
    preprocess(phantoms / "brats2021", tmp_path / "par", CFG, workers=2, progress=False)
    _same_store(reference_store, SliceStore(tmp_path / "par"))


# ---------------------------------------------------------------------------------------------------------------
def _bad_inputs(root):
    """Six subjects: one good, five broken in the ways the issue lists. Returns {subject: expected reason part}."""
    for sid in ("GOOD", "MISS", "CORRUPT", "TRUNC", "SHAPE", "AFFINE", "ZERO", "NAN"):
        _write_case(root, sid)
    (root / "MISS" / "MISS_t1.nii.gz").unlink()
    (root / "CORRUPT" / "CORRUPT_t1.nii.gz").write_bytes(b"this is not a NIfTI file at all" * 10)
    full = (root / "TRUNC" / "TRUNC_flair.nii.gz").read_bytes()
    (root / "TRUNC" / "TRUNC_flair.nii.gz").write_bytes(full[: len(full) // 2])
    nib.save(nib.Nifti1Image(np.ones((20, 22, 17), np.int16), np.diag([-2.0, -2, 2, 1])), root / "SHAPE" / "SHAPE_t1.nii.gz")
    img = nib.load(root / "AFFINE" / "AFFINE_t1.nii.gz")
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), np.diag([-2.0, -2, 3, 1])), root / "AFFINE" / "AFFINE_t1.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((20, 22, 18), np.int16), np.diag([-2.0, -2, 2, 1])), root / "ZERO" / "ZERO_flair.nii.gz")
    vol = np.asanyarray(nib.load(root / "NAN" / "NAN_t1.nii.gz").dataobj).astype(np.float32)
    vol[10, 10, 9] = np.nan
    nib.save(nib.Nifti1Image(vol, np.diag([-2.0, -2, 2, 1])), root / "NAN" / "NAN_t1.nii.gz")
    return {
        "MISS": ("MISS", "lacks modality t1"),
        "CORRUPT": ("CORRUPT_t1.nii.gz", "cannot be read"),
        "TRUNC": ("TRUNC_flair.nii.gz", "cannot be read"),
        "SHAPE": ("SHAPE_t1.nii.gz", "has shape (20, 22, 17) but flair has (20, 22, 18)"),
        "AFFINE": ("AFFINE_t1.nii.gz", "another affine"),
        "ZERO": ("ZERO_flair.nii.gz", "all zero"),
        "NAN": ("NAN_t1.nii.gz", "NaN"),
    }


def test_bad_subjects_are_skipped_with_reasons(tmp_path):
    expected = _bad_inputs(tmp_path / "data")
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[1.0, 0.0, 0.0])
    summary = preprocess(tmp_path / "data", tmp_path / "store", cfg, workers=1, progress=False)
    store = SliceStore(tmp_path / "store")
    assert list(store.subjects) == ["GOOD"] and summary["subjects_stored"] == 1
    got = {s["subject"]: s for s in summary["skipped"]}
    assert set(got) == set(expected)
    skipped_csv = store.skipped.set_index("subject")
    for sid, (path_part, reason_part) in expected.items():
        assert path_part in got[sid]["path"], (sid, got[sid])
        assert reason_part in got[sid]["reason"], (sid, got[sid])
        assert "\n" not in got[sid]["reason"]
        assert skipped_csv.loc[sid, "reason"] == got[sid]["reason"]
    assert not partial_dir_for(tmp_path / "store").exists()


@pytest.mark.parametrize("sid", ["CORRUPT", "NAN", "MISS"])
def test_strict_stops_with_one_line_naming_the_file(tmp_path, sid):
    expected = _bad_inputs(tmp_path / "all")
    data = tmp_path / "data"
    shutil.copytree(tmp_path / "all" / sid, data / sid)
    shutil.copytree(tmp_path / "all" / "GOOD", data / "GOOD")
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[1.0, 0.0, 0.0])
    with pytest.raises(UserInputError) as err:
        preprocess(data, tmp_path / "store", cfg, workers=1, progress=False, strict=True)
    msg = str(err.value)
    assert "\n" not in msg and expected[sid][0] in msg and expected[sid][1] in msg and "`strict`" in msg
    assert not (tmp_path / "store").exists()


def test_resume_after_interruption_equals_uninterrupted_run(phantoms, reference_store, tmp_path):
    store_dir = tmp_path / "store"
    done = []

    def crash_after_two(result):
        done.append(result["subject"])
        if len(done) == 2:
            raise KeyboardInterrupt  # as if the run were killed here

    with pytest.raises(KeyboardInterrupt):
        preprocess(phantoms / "brats2021", store_dir, CFG, workers=1, progress=False, on_subject_done=crash_after_two)
    partial = partial_dir_for(store_dir)
    assert not store_dir.exists()
    assert sorted(p.stem for p in (partial / "subjects").glob("*.json")) == sorted(done)

    seen = []
    summary = preprocess(phantoms / "brats2021", store_dir, CFG, workers=1, progress=False,
                         on_subject_done=lambda r: seen.append(r["subject"]))
    assert summary["subjects_reused"] == 2 and summary["subjects_processed"] == 2
    assert sorted(seen + done) == sorted(reference_store.subjects) and not set(seen) & set(done)
    _same_store(reference_store, SliceStore(store_dir))
    assert not partial.exists()


def test_resume_redoes_a_subject_whose_files_changed(tmp_path):
    for i in range(3):
        _write_case(tmp_path / "data", f"S{i}", seed=i)
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[1.0, 0.0, 0.0])
    done = []

    def crash_after_two(result):
        done.append(result["subject"])
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        preprocess(tmp_path / "data", tmp_path / "store", cfg, workers=1, progress=False, on_subject_done=crash_after_two)
    changed = tmp_path / "data" / done[0] / f"{done[0]}_flair.nii.gz"
    _write_case(tmp_path / "new", done[0], seed=99)  # new content for one finished subject
    shutil.copy(tmp_path / "new" / done[0] / f"{done[0]}_flair.nii.gz", changed)
    seen = []
    summary = preprocess(tmp_path / "data", tmp_path / "store", cfg, workers=1, progress=False,
                         on_subject_done=lambda r: seen.append(r["subject"]))
    assert summary["subjects_reused"] == 1 and sorted(seen) == sorted({"S0", "S1", "S2"} - {done[1]})


def test_partial_of_another_config_needs_overwrite(phantoms, tmp_path):
    store_dir = tmp_path / "store"

    def crash(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        preprocess(phantoms / "brats2023", store_dir, CFG, workers=1, progress=False, on_subject_done=crash)
    other = PreprocessConfig(in_plane_size=64, split_fractions=[0.5, 0.5, 0.0], min_brain_fraction=0.1)  # 2 subjects
    with pytest.raises(UserInputError, match="interrupted run with another config.*`overwrite=True`"):
        preprocess(phantoms / "brats2023", store_dir, other, workers=1, progress=False)
    summary = preprocess(phantoms / "brats2023", store_dir, other, workers=1, progress=False, overwrite=True)
    assert summary["subjects_reused"] == 0 and SliceStore(store_dir).config["min_brain_fraction"] == 0.1


def test_existing_store_up_to_date_or_needs_overwrite(phantoms, reference_store, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(reference_store.path, store_dir)
    mtime = (store_dir / "store.json").stat().st_mtime_ns
    summary = preprocess(phantoms / "brats2021", store_dir, CFG, workers=1, progress=False)
    assert summary["status"] == "up_to_date" and (store_dir / "store.json").stat().st_mtime_ns == mtime
    other = PreprocessConfig(in_plane_size=48, split_fractions=[0.5, 0.25, 0.25], min_brain_fraction=0.05)
    with pytest.raises(UserInputError, match="another config.*`overwrite=True`"):
        preprocess(phantoms / "brats2021", store_dir, other, workers=1, progress=False)
    assert SliceStore(store_dir).image_size == (64, 64)  # untouched
    preprocess(phantoms / "brats2021", store_dir, other, workers=1, progress=False, overwrite=True)
    assert SliceStore(store_dir).image_size == (48, 48)


def test_unwritable_or_wrong_store_paths(phantoms, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot write"):
        preprocess(phantoms / "msd", blocker / "store", CFG, workers=1, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "thing.txt").write_text("x")
    with pytest.raises(UserInputError, match="not a slice store"):
        preprocess(phantoms / "msd", other, CFG, workers=1, progress=False)
    with pytest.raises(UserInputError, match="does not exist"):
        preprocess(tmp_path / "missing", tmp_path / "s", CFG, workers=1, progress=False)


# ---------------------------------------------------------------------------------------------------------------
def test_cli_preprocess(phantoms, tmp_path):
    cfg_file = tmp_path / "pre.yaml"
    cfg_file.write_text("in_plane_size: 64\nsplit_fractions: [0.5, 0.5, 0.0]\n")
    runner = CliRunner()
    args = ["preprocess", str(phantoms / "msd"), str(tmp_path / "store"), "--config", str(cfg_file),
            "--set", "dtype=float32", "--workers", "1", "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "preprocessed 2 subject(s)" in res.output and "train: 1 subjects" in res.output
    store = SliceStore(tmp_path / "store")
    assert store.meta["dtype"] == "float32" and store.config["in_plane_size"] == 64
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "already up to date" in res.output


def test_cli_errors_are_one_line(phantoms, tmp_path, capsys):
    code = main(["preprocess", str(phantoms / "msd"), str(tmp_path / "s"), "--set", "in_plane=64", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "in_plane" in err and "\n" not in err
    code = main(["preprocess", str(tmp_path / "nowhere"), str(tmp_path / "s"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "does not exist" in err and "\n" not in err


@pytest.mark.parametrize("name", ["preprocess-phantom.yaml", "preprocess-brats.yaml"])
def test_shipped_configs_load(name):
    from pathlib import Path

    from mri_harmonic.config import load_config

    cfg = load_config(PreprocessConfig, Path(__file__).parents[1] / "configs" / name)
    assert isinstance(cfg, PreprocessConfig)


def test_bad_config_values_name_the_key():
    from mri_harmonic.config import from_dict

    for data, key in [({"split_fractions": [0.5, 0.2, 0.2]}, "split_fractions"), ({"modalities": ["pd"]}, "modalities"),
                      ({"percentiles": [99, 1]}, "percentiles"), ({"spacing": [1, 1]}, "spacing"), ({"dtype": "int8"}, "dtype")]:
        with pytest.raises(UserInputError, match=key):
            from_dict(PreprocessConfig, data)


# ---- signals, worker processes, leftovers ---------------------------------------------------------------------
def _children(pid):
    """Pids of the live (not zombie) processes whose parent is ``pid`` (Linux /proc)."""
    from pathlib import Path

    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid):
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_slow_preprocess(tmp_path, n=10):
    import os
    import subprocess
    import sys
    import time

    for i in range(n):
        _write_case(tmp_path / "data", f"S{i:02d}", shape=(48, 52, 40), seed=i)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "mri_harmonic.cli", "preprocess", str(tmp_path / "data"),
                             str(tmp_path / "store"), "--workers", "2", "--no-progress", "--set", "in_plane_size=64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    subjects = partial_dir_for(tmp_path / "store") / "subjects"
    deadline = time.time() + 120
    while not list(subjects.glob("*.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers  # the pool's workers (and its resource tracker, if any)
    return proc, workers


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_sigterm_exits_143_with_a_message_and_stops_the_workers(tmp_path):
    import signal
    import time

    proc, workers = _start_slow_preprocess(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    line = err.strip().splitlines()[-1]
    assert "SIGTERM" in line and "run the same command again" in line and str(partial_dir_for(tmp_path / "store")) in line
    assert "Traceback" not in err
    time.sleep(0.5)
    assert not [w for w in workers if _alive(w)]


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_workers_end_with_a_killed_parent_and_the_rerun_finishes(tmp_path):
    import signal
    import time

    proc, workers = _start_slow_preprocess(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.time() + 10
    while [w for w in workers if _alive(w)] and time.time() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)]
    summary = preprocess(tmp_path / "data", tmp_path / "store", PreprocessConfig(in_plane_size=64), workers=1, progress=False)
    assert summary["subjects_reused"] >= 1 and summary["subjects_stored"] == 10
    assert not list((tmp_path / "store").parent.glob(".*tmp*"))


def test_stale_temporary_store_folders_are_removed(phantoms, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / ".store.tmp-abc123"  # a final write killed before its rename
    stale.mkdir()
    (stale / ".owner-pid").write_text(dead.stdout)
    (stale / "store.json").write_text("{}")
    orphan = tmp_path / ".store.tmp-nopid"  # no owner file at all
    orphan.mkdir()
    live = tmp_path / ".store.tmp-live"  # another process (here: this one) still building it
    live.mkdir()
    (live / ".owner-pid").write_text(str(__import__("os").getpid()))
    preprocess(phantoms / "brats2023", tmp_path / "store", CFG.__class__(in_plane_size=64, split_fractions=[0.5, 0.5, 0.0]),
               workers=1, progress=False)
    assert not stale.exists() and not orphan.exists() and live.exists()
    assert SliceStore(tmp_path / "store").splits == ["train", "val"]


def test_a_failed_preprocess_leaves_no_resume_folder(tmp_path):
    _write_case(tmp_path / "data", "ONLY")
    bad = tmp_path / "data" / "ONLY" / "ONLY_flair.nii.gz"
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(UserInputError, match="no subject"):
        preprocess(tmp_path / "data", tmp_path / "out" / "store", PreprocessConfig(in_plane_size=32), workers=1, progress=False)
    assert not partial_dir_for(tmp_path / "out" / "store").exists()


def test_nrrd_and_mha_cases_give_the_store_of_their_nifti_copies(tmp_path):
    """A folder of cases with one NRRD / MHA file per modality (written by SimpleITK from the NIfTI files)
    preprocesses into the same store as the NIfTI folder."""
    import SimpleITK as sitk

    for i in range(2):
        _write_case(tmp_path / "nifti", f"S{i}", seed=i, affine=np.array([[0, 0, 2.0, -5], [-2.0, 0, 0, 30], [0, 2.0, 0, 1], [0, 0, 0, 1]]))
    for f in sorted((tmp_path / "nifti").rglob("*.nii.gz")):
        ext = {"flair": ".nrrd", "t1": ".mha", "seg": ".nrrd"}[f.name.split("_")[-1].split(".")[0]]
        out = tmp_path / "other" / f.parent.name / f.name.replace(".nii.gz", ext)
        out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.ReadImage(str(f)), str(out))
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[0.5, 0.5, 0.0])
    preprocess(tmp_path / "nifti", tmp_path / "a", cfg, workers=1, progress=False)
    summary = preprocess(tmp_path / "other", tmp_path / "b", cfg, workers=1, progress=False)
    assert not summary["skipped"]
    _same_store(SliceStore(tmp_path / "a"), SliceStore(tmp_path / "b"))
    assert SliceStore(tmp_path / "b").subjects["S0"]["sources"]["flair"]["path"].endswith("S0_flair.nrrd")
    bad = tmp_path / "other" / "S1" / "S1_t1.mha"
    bad.write_bytes(bad.read_bytes()[:200])
    summary = preprocess(tmp_path / "other", tmp_path / "c", PreprocessConfig(in_plane_size=32, split_fractions=[1, 0, 0]),
                         workers=1, progress=False)
    assert [s["subject"] for s in summary["skipped"]] == ["S1"] and "S1_t1.mha" in summary["skipped"][0]["path"]


def test_compute_slices_returns_the_store_without_writing(phantoms, reference_store, tmp_path, monkeypatch):
    """The computing core gives the arrays and tables preprocess() writes, and leaves nothing on disk."""
    import tempfile

    from mri_harmonic.data.preprocess import compute_slices

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the core's scratch folder, to check it is removed
    before = sorted(p for p in phantoms.rglob("*"))
    result = compute_slices(phantoms / "brats2021", CFG, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert sorted(p for p in phantoms.rglob("*")) == before
    assert result.summary["status"] == "computed" and result.summary["store"] is None
    written = pd.read_csv(reference_store.path / "manifest.csv")
    pd.testing.assert_frame_equal(result.manifest.reset_index(drop=True), written[list(result.manifest.columns)],
                                  check_dtype=False)
    for split in reference_store.splits:
        for name in NAMES:
            assert np.array_equal(result.arrays[split][name], reference_store.array(split, name)), (split, name)
    assert result.subjects.keys() == set(reference_store.manifest["subject"])


def _dicom_case_copy(nifti_case, out_case, series_numbers=(1,)):
    """``out_case/{flair/ (a DICOM series), t1.nrrd, seg.nii.gz}``: the case's files under bare modality names, the
    FLAIR as a DICOM series folder written by SimpleITK (``series_numbers``: several make several series in it)."""
    import SimpleITK as sitk
    from conftest import write_dicom_series

    out_case.mkdir(parents=True)
    sid = nifti_case.name
    for n in series_numbers:
        write_dicom_series(sitk.ReadImage(str(nifti_case / f"{sid}_flair.nii.gz")), out_case / "flair", series_number=n)
    sitk.WriteImage(sitk.ReadImage(str(nifti_case / f"{sid}_t1.nii.gz")), str(out_case / "t1.nrrd"))
    shutil.copy(nifti_case / f"{sid}_seg.nii.gz", out_case / "seg.nii.gz")


def test_a_dicom_series_folder_per_modality_gives_the_store_of_the_nifti_case(tmp_path, capsys):
    """``case/flair/`` holding the FLAIR's DICOM series (one file per slice), ``case/t1.nrrd``, ``case/seg.nii.gz``:
    through ``mri-harmonic preprocess`` (resampled to another spacing), the same store as the NIfTI cases."""
    import locale

    affine = np.array([[0, 0, 2.0, -5], [-2.0, 0, 0, 30], [0, 2.0, 0, 1], [0, 0, 0, 1]])  # stored as P, S, L
    for i in range(2):
        _write_case(tmp_path / "nifti", f"S{i}", seed=i, affine=affine)
        _dicom_case_copy(tmp_path / "nifti" / f"S{i}", tmp_path / "clinical" / f"S{i}")
    before = locale.setlocale(locale.LC_ALL)  # GDCM switches to "C" unless the readers restore it
    assert len(list((tmp_path / "clinical" / "S0" / "flair").glob("*.dcm"))) == 18  # one file per slice
    cfg = tmp_path / "pre.yaml"
    cfg.write_text("in_plane_size: 32\nspacing: [1.5, 1.5, 1.5]\nsplit_fractions: [0.5, 0.5, 0.0]\n")
    for data, store in (("nifti", "a"), ("clinical", "b")):
        code = main(["preprocess", str(tmp_path / data), str(tmp_path / store), "--config", str(cfg), "--workers", "1",
                     "--no-progress"])
        out = capsys.readouterr()
        assert code == 0, out.err
    assert "skipped" not in out.out and "preprocessed 2 subject(s)" in out.out
    assert locale.setlocale(locale.LC_ALL) == before
    _same_store(SliceStore(tmp_path / "a"), SliceStore(tmp_path / "b"))
    sources = SliceStore(tmp_path / "b").subjects["S0"]["sources"]
    assert sources["flair"]["path"].endswith("S0/flair") and sources["t1"]["path"].endswith("S0/t1.nrrd")
    assert SliceStore(tmp_path / "b").subjects["S0"]["seg_path"].endswith("S0/seg.nii.gz")


def test_a_modality_folder_with_two_dicom_series_is_skipped_naming_it(tmp_path, capsys):
    for i in range(3):
        _write_case(tmp_path / "nifti", f"S{i}", seed=i)
        _dicom_case_copy(tmp_path / "nifti" / f"S{i}", tmp_path / "data" / f"S{i}", series_numbers=(1, 2) if i == 1 else (1,))
    cfg = PreprocessConfig(in_plane_size=32, split_fractions=[0.5, 0.5, 0.0])
    summary = preprocess(tmp_path / "data", tmp_path / "store", cfg, workers=1, progress=False)
    (skip,) = summary["skipped"]
    assert skip["subject"] == "S1" and skip["path"] == str(tmp_path / "data" / "S1" / "flair")
    assert "holds 2 DICOM series" in skip["reason"] and "folder of its own" in skip["reason"]
    code = main(["preprocess", str(tmp_path / "data"), str(tmp_path / "strict"), "--strict", "--set", "in_plane_size=32",
                 "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and f"{tmp_path / 'data' / 'S1' / 'flair'}: holds 2 DICOM series" in err


def test_a_resume_fingerprint_follows_the_files_of_a_dicom_series_folder(tmp_path):
    """A rewritten slice file of a series folder changes the subject's fingerprint (the folder's own size and time
    would not), so a resumed run redoes that subject."""
    import os

    from mri_harmonic.data.layouts import discover
    from mri_harmonic.data.preprocess import fingerprint

    _write_case(tmp_path / "nifti", "S0")
    _dicom_case_copy(tmp_path / "nifti" / "S0", tmp_path / "data" / "S0")
    (case,) = discover(tmp_path / "data")
    before = fingerprint(case)
    folder = tmp_path / "data" / "S0" / "flair"
    sl = sorted(folder.iterdir())[3]
    stat = os.stat(folder)
    sl.write_bytes(sl.read_bytes() + b"\0\0")
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = fingerprint(case)
    assert before[str(folder)] != after[str(folder)]
    assert {k: v for k, v in before.items() if k != str(folder)} == {k: v for k, v in after.items() if k != str(folder)}
