"""`mri-harmonic translate`: whole-volume round trip on hand-made NIfTI files with a tiny trained run."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import make_synthetic_store, write_dicom_series

from mri_harmonic.config import dump_config
from mri_harmonic.errors import UserInputError
from mri_harmonic.evaluation.translate import modality_from_name, translate

SHAPE = (28, 30, 12)


def write_subject(path, seed=0, shape=SHAPE):
    """An ellipsoid 'brain' with texture, stored with a flipped (LPS-like), anisotropic affine."""
    rng = np.random.default_rng(seed)
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    c = [s / 2 for s in shape]
    brain = ((ii - c[0]) / (shape[0] * 0.4)) ** 2 + ((jj - c[1]) / (shape[1] * 0.4)) ** 2 + ((kk - c[2]) / (shape[2] * 0.55)) ** 2 < 1
    data = np.where(brain, 100 + 40 * np.sin(ii / 3.0) + 10 * rng.random(shape), 0).astype(np.float32)
    affine = np.diag([-1.2, -1.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, -5.0]
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path, brain


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mri_harmonic.config import from_dict
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.training.config import TrainConfig
    from mri_harmonic.training.trainer import train

    root = tmp_path_factory.mktemp("translate")
    store = make_synthetic_store(root / "store")
    pre = PreprocessConfig(in_plane_size=32, min_brain_fraction=0.0)
    dump_config(pre, store / "config.yaml")  # the store now records the preprocessing a NIfTI input must get
    cfg = from_dict(TrainConfig, {"model": {"ngf": 4, "ndf": 4, "n_blocks": 1}, "max_steps": 2, "sample_every": 0,
                                  "checkpoint_every": 2, "device": "cpu", "tensorboard": False, "sample_slices": 1})
    run = root / "run"
    train(str(store), str(run), "flair2t1", cfg, progress=False)
    volume, brain = write_subject(root / "data" / "sub_flair.nii.gz")
    return root, store, run, pre, volume, brain


def test_round_trip_geometry_and_readers(setup):
    root, _, run, _, volume, brain = setup
    out = root / "out" / "sub_t1_synthetic.nii.gz"
    assert translate(run, volume, out, device="cpu", progress=False) == [out]
    src, img = nib.load(str(volume)), nib.load(str(out))
    assert img.shape == SHAPE and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, src.affine)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    data = img.get_fdata()
    assert data[~brain].max() == 0 and data[brain].max() > 0 and data.max() <= 1.0
    sim_in, sim_out = sitk.ReadImage(str(volume)), sitk.ReadImage(str(out))
    assert sim_out.GetSize() == sim_in.GetSize()
    np.testing.assert_allclose(sim_out.GetDirection(), sim_in.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(sim_out.GetOrigin(), sim_in.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(sim_out.GetSpacing(), sim_in.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sim_out).transpose(2, 1, 0), data, atol=1e-6)


def test_output_equals_model_on_preprocessed_slices(setup):
    from mri_harmonic.checkpoint import load_run
    from mri_harmonic.data.geometry import prepare_volume, slice_to_source_voxel

    root, _, run, pre, volume, _ = setup
    out = root / "out" / "check.nii.gz"
    translate(run, volume, out, device="cpu", progress=False)
    data = nib.load(str(out)).get_fdata()
    prepared = prepare_volume(volume, pre, "flair")
    net = load_run(run).generator_for("flair")
    z = prepared.slices.shape[0] // 2
    with torch.no_grad():
        y = net(torch.from_numpy(prepared.slices[z] * 2 - 1)[None, None].float())[0, 0].numpy()
    expected = np.clip((y + 1) / 2, 0, 1)
    rows, cols = np.nonzero(prepared.mask[z])
    assert len(rows) > 20
    for r, c in list(zip(rows, cols))[:: max(1, len(rows) // 40)]:
        i, j, k = slice_to_source_voxel(prepared.geometry, z, int(r), int(c))
        assert data[i, j, k] == pytest.approx(expected[r, c], abs=1e-5)


def test_background_is_exactly_the_inputs_own_after_resampling(setup, tmp_path):
    """With a resampling preprocess config, the output is non-zero exactly on the input's non-zero voxels."""
    from mri_harmonic.data.config import PreprocessConfig

    root, _, run, _, volume, brain = setup
    dump_config(PreprocessConfig(in_plane_size=32, min_brain_fraction=0.0, spacing=[2.0, 1.5, 3.0]), tmp_path / "pre.yaml")
    out = translate(run, volume, tmp_path / "o.nii.gz", store_config=tmp_path / "pre.yaml", device="cpu")[0]
    data = nib.load(str(out)).get_fdata()
    assert np.array_equal(data != 0, brain)


def test_scale_and_default_store_config(setup):
    root, store, run, _, volume, _ = setup
    a = nib.load(str(translate(run, volume, root / "o1.nii.gz", device="cpu")[0])).get_fdata()
    b = nib.load(str(translate(run, volume, root / "o2.nii.gz", store_config=store, scale=255, device="cpu")[0])).get_fdata()
    np.testing.assert_allclose(b, 255 * a, rtol=1e-5, atol=1e-4)


def test_folder_form(setup):
    root, _, run, _, _, _ = setup
    data_dir = root / "brats"
    for k, sid in enumerate(["BraTS2021_00001", "BraTS2021_00002"]):
        for m in ("flair", "t1"):
            write_subject(data_dir / sid / f"{sid}_{m}.nii.gz", seed=k)
    written = translate(run, data_dir, root / "folder-out", direction="t12flair", device="cpu", progress=False)
    assert [p.relative_to(root / "folder-out").as_posix() for p in written] == [
        "BraTS2021_00001/BraTS2021_00001_flair_synthetic.nii.gz", "BraTS2021_00002/BraTS2021_00002_flair_synthetic.nii.gz"]
    assert nib.load(str(written[0])).shape == SHAPE


def test_folder_translate_skips_unreadable_subjects(setup, tmp_path):
    """A truncated FLAIR in the middle of a folder: every other subject is translated, the bad one is listed in
    skipped.csv, the CLI exits 0 with a summary; only a folder where nothing can be translated is an error."""
    import pandas as pd
    from typer.testing import CliRunner

    from mri_harmonic.cli import app

    root, _, run, _, _, _ = setup
    data_dir = tmp_path / "brats"
    ids = ["BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003"]
    for k, sid in enumerate(ids):
        for m in ("flair", "t1"):
            write_subject(data_dir / sid / f"{sid}_{m}.nii.gz", seed=k)
    bad = data_dir / ids[1] / f"{ids[1]}_flair.nii.gz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["translate", str(run), str(data_dir), str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [ids[0], ids[2], "skipped.csv"]
    skipped = pd.read_csv(out / "skipped.csv")
    assert list(skipped.columns) == ["subject", "file", "reason"]
    assert skipped["subject"].tolist() == [ids[1]] and skipped["file"].tolist() == [str(bad)]
    assert "truncated" in skipped["reason"][0]
    assert "wrote 2 volume(s)" in res.output and "skipped 1 subject(s)" in res.output and ids[1] in res.output
    # nothing readable: one-line error, and the output folder it would have created is not left behind
    for sid in (ids[0], ids[2]):
        f = data_dir / sid / f"{sid}_flair.nii.gz"
        f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(UserInputError, match="no subject") as exc:
        translate(run, data_dir, tmp_path / "none" / "out", device="cpu", progress=False)
    assert "\n" not in str(exc.value) and not (tmp_path / "none").exists()


def test_failed_file_translate_leaves_no_empty_folder(setup, tmp_path):
    _, _, run, _, _, _ = setup
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 20), np.float32), np.eye(4)), str(flat))
    with pytest.raises(UserInputError):
        translate(run, flat, tmp_path / "new" / "deeper" / "o.nii.gz", device="cpu")
    assert not (tmp_path / "new").exists()


def test_checkpoint_choice(setup, tmp_path):
    """--checkpoint step_N translates with that periodic checkpoint; an unknown one lists those that exist."""
    from typer.testing import CliRunner

    from mri_harmonic.cli import app

    _, _, run, _, volume, _ = setup
    a = translate(run, volume, tmp_path / "a.nii.gz", device="cpu", checkpoint="step_2")[0]
    b = translate(run, volume, tmp_path / "b.nii.gz", device="cpu")[0]  # latest is step 2 too
    np.testing.assert_array_equal(nib.load(str(a)).get_fdata(), nib.load(str(b)).get_fdata())
    res = CliRunner().invoke(app, ["translate", str(run), str(volume), str(tmp_path / "c.nii.gz"), "--device", "cpu",
                                   "--checkpoint", "step_0000002"])
    assert res.exit_code == 0, res.output
    with pytest.raises(UserInputError, match="step_0000002") as exc:
        translate(run, volume, tmp_path / "d.nii.gz", device="cpu", checkpoint="step_7")
    assert "'step_7'" in _one_line(exc)


def test_modality_from_name():
    assert modality_from_name("x/BraTS2021_00001_flair.nii.gz") == "flair"
    assert modality_from_name("BraTS-GLI-00000-000-t1n.nii.gz") == "t1"
    assert modality_from_name("anything.nii.gz") is None


# ---- bad input -----------------------------------------------------------------------------------------------------
def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_run_without_checkpoint(setup, tmp_path):
    _, _, _, _, volume, _ = setup
    (tmp_path / "norun").mkdir()
    with pytest.raises(UserInputError) as exc:
        translate(tmp_path / "norun", volume, tmp_path / "o.nii.gz", device="cpu")
    assert "norun" in _one_line(exc) and "checkpoint" in str(exc.value)


def test_wrong_modality_name(setup, tmp_path):
    root, _, run, _, _, _ = setup
    t1_file, _ = write_subject(tmp_path / "sub_t1.nii.gz")
    with pytest.raises(UserInputError, match="sub_t1.nii.gz") as exc:
        translate(run, t1_file, tmp_path / "o.nii.gz", device="cpu")
    assert "`direction` t12flair" in _one_line(exc)


def test_two_d_input(setup, tmp_path):
    _, _, run, _, _, _ = setup
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 20), np.float32), np.eye(4)), str(flat))
    with pytest.raises(UserInputError, match="flat.nii.gz") as exc:
        translate(run, flat, tmp_path / "o.nii.gz", device="cpu")
    assert "3-D" in _one_line(exc)


def test_preprocess_config_of_other_size(setup, tmp_path):
    from mri_harmonic.data.config import PreprocessConfig

    _, _, run, _, volume, _ = setup
    dump_config(PreprocessConfig(in_plane_size=48), tmp_path / "pre48.yaml")
    with pytest.raises(UserInputError, match="48x48") as exc:
        translate(run, volume, tmp_path / "o.nii.gz", store_config=tmp_path / "pre48.yaml", device="cpu")
    assert "sub_flair.nii.gz" in _one_line(exc) and "32x32" in str(exc.value)


def test_store_config_missing_or_foreign(setup, tmp_path):
    root, _, run, _, volume, _ = setup
    with pytest.raises(UserInputError, match="nowhere"):
        translate(run, volume, tmp_path / "o.nii.gz", store_config=tmp_path / "nowhere", device="cpu")
    synthetic = make_synthetic_store(tmp_path / "synthetic")  # its config.yaml is not a PreprocessConfig
    with pytest.raises(UserInputError, match="synthetic"):
        translate(run, volume, tmp_path / "o.nii.gz", store_config=synthetic, device="cpu")


def test_bad_output_paths(setup, tmp_path):
    _, _, run, _, volume, _ = setup
    with pytest.raises(UserInputError, match=r"\.nii\.gz"):
        translate(run, volume, tmp_path / "o.png", device="cpu")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot write"):
        translate(run, volume, blocker / "o.nii.gz", device="cpu")


def test_cli_translate(setup, tmp_path, capsys):
    from typer.testing import CliRunner

    from mri_harmonic.cli import app, main

    _, _, run, _, volume, _ = setup
    out = tmp_path / "cli.nii.gz"
    res = CliRunner().invoke(app, ["translate", str(run), str(volume), str(out), "--direction", "flair2t1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "wrote" in res.output
    code = main(["translate", str(run), str(tmp_path / "missing.nii.gz"), str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "missing.nii.gz" in err and len(err.splitlines()) == 1


def test_translate_agrees_with_store_slices_of_real_preprocess(tmp_path):
    """Store built by the real `preprocess` from NIfTI files -> tiny run -> `translate` of one subject's FLAIR:
    each stored slice of that subject, put through the generator, equals the translated volume at its voxels."""
    from mri_harmonic.checkpoint import load_run
    from mri_harmonic.config import from_dict
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.data.geometry import slice_to_source_voxel
    from mri_harmonic.data.preprocess import preprocess
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.training.config import TrainConfig
    from mri_harmonic.training.trainer import train

    data = tmp_path / "data"
    for k in range(3):
        sid = f"BraTS2021_{k:05d}"
        for m in ("flair", "t1"):
            write_subject(data / sid / f"{sid}_{m}.nii.gz", seed=10 * k + len(m))
        seg = np.zeros(SHAPE, np.uint8)
        seg[12:16, 13:17, 5:8] = 2
        nib.save(nib.Nifti1Image(seg, nib.load(str(data / sid / f"{sid}_flair.nii.gz")).affine), str(data / sid / f"{sid}_seg.nii.gz"))
    pre = PreprocessConfig(in_plane_size=32, min_brain_fraction=0.05, dtype="float32", split_fractions=[0.34, 0.33, 0.33])
    preprocess(data, tmp_path / "store", pre, workers=1, progress=False)
    cfg = from_dict(TrainConfig, {"model": {"ngf": 4, "ndf": 4, "n_blocks": 1}, "max_steps": 1, "sample_every": 0,
                                  "checkpoint_every": 1, "device": "cpu", "tensorboard": False, "sample_slices": 1})
    run = tmp_path / "run"
    train(str(tmp_path / "store"), str(run), "flair2t1", cfg, progress=False)

    store = SliceStore(tmp_path / "store")
    man = store.manifest
    rec = man.iloc[0]
    sid, split = rec["subject"], rec["split"]
    out = translate(run, data / sid / f"{sid}_flair.nii.gz", tmp_path / "out.nii.gz", device="cpu")[0]
    vol = nib.load(str(out)).get_fdata()
    net, geom = load_run(run).generator_for("flair"), store.geometry(sid)
    rows = man[(man.subject == sid)]
    assert len(rows) >= 2
    for _, r in rows.iterrows():
        x = np.asarray(store.array(split, "flair")[int(r["row"])], dtype=np.float32)
        brain = np.asarray(store.array(split, "mask")[int(r["row"])]) > 0
        with torch.no_grad():
            y = np.clip((net(torch.from_numpy(x * 2 - 1)[None, None])[0, 0].numpy() + 1) / 2, 0, 1)
        rr, cc = np.nonzero(brain)
        for i in range(0, len(rr), max(1, len(rr) // 15)):
            v = slice_to_source_voxel(geom, int(r["slice_index"]), int(rr[i]), int(cc[i]))
            assert vol[v] == pytest.approx(y[rr[i], cc[i]], abs=1e-5)


# ---- other formats through SimpleITK --------------------------------------------------------------------------------
def test_nrrd_mha_and_dicom_inputs_match_the_nifti_path(setup, tmp_path):
    """Without a training spacing to resample to, an NRRD / MHA / DICOM copy of a volume translates to exactly what
    its NIfTI does (the orientation change is a permutation), on the input's grid, in the format asked for."""
    _, _, run, _, volume, brain = setup
    img = sitk.Cast(sitk.Round(sitk.ReadImage(str(volume))), sitk.sitkInt16)  # DICOM holds integers
    nifti = tmp_path / "in_flair.nii.gz"
    sitk.WriteImage(img, str(nifti))
    ref = nib.load(str(translate(run, nifti, tmp_path / "ref.nii.gz", device="cpu")[0])).get_fdata()
    inputs = {"nrrd": tmp_path / "in.nrrd", "mha": tmp_path / "in.mha"}
    for path in inputs.values():
        sitk.WriteImage(img, str(path))
    inputs["dicom"] = write_dicom_series(img, tmp_path / "dicom")
    for fmt, path in inputs.items():
        out_nii = translate(run, path, tmp_path / f"{fmt}.nii.gz", device="cpu")[0]
        got = nib.load(str(out_nii))
        np.testing.assert_allclose(got.affine, nib.load(str(nifti)).affine, atol=1e-4)
        np.testing.assert_allclose(got.get_fdata(), ref, atol=1e-4, err_msg=fmt)
    out = translate(run, inputs["nrrd"], tmp_path / "same-format.nrrd", device="cpu")[0]
    back = sitk.ReadImage(str(out))
    assert back.GetSize() == img.GetSize() and np.allclose(back.GetSpacing(), img.GetSpacing())
    np.testing.assert_allclose(sitk.GetArrayFromImage(back).transpose(2, 1, 0), ref, atol=1e-4)
    assert np.array_equal(ref != 0, brain)


def test_folder_of_cases_with_a_dicom_series_folder(setup, tmp_path):
    """A data folder whose case holds its FLAIR as a DICOM series folder (``case01/flair/``) translates, as a
    folder, to what the series folder gives alone."""
    _, _, run, _, volume, _ = setup
    img = sitk.Cast(sitk.Round(sitk.ReadImage(str(volume))), sitk.sitkInt16)
    write_dicom_series(img, tmp_path / "data" / "case01" / "flair")
    sitk.WriteImage(img, str(tmp_path / "data" / "case01" / "t1.nrrd"))  # the target modality: not read
    alone = translate(run, tmp_path / "data" / "case01" / "flair", tmp_path / "alone.nii.gz", device="cpu")[0]
    (out,) = translate(run, tmp_path / "data", tmp_path / "out", device="cpu", progress=False)
    assert out == tmp_path / "out" / "case01" / "case01_t1_synthetic.nii.gz"
    np.testing.assert_array_equal(nib.load(str(out)).get_fdata(), nib.load(str(alone)).get_fdata())


def test_sitk_input_is_resampled_to_the_training_spacing_and_back(setup, tmp_path):
    """An oblique-free but permuted, finely sampled NRRD: resampled to the run's spacing, translated, resampled back
    onto its own grid; 0 exactly outside its own brain, translated values inside, close to the NIfTI path's."""
    from mri_harmonic.data.config import PreprocessConfig

    _, _, run, _, _, _ = setup
    shape = (40, 36, 30)  # (x, y, z) voxels of 0.6 x 0.8 x 1.0 mm, axes stored as P, I, L
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    c = [s / 2 for s in shape]
    inside = sum(((a - ci) / (s * 0.42)) ** 2 for a, ci, s in zip((ii, jj, kk), c, shape)) < 1
    arr = np.where(inside, 100 + 40 * np.sin(ii / 4.0), 0).astype(np.float32)
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    img.SetSpacing((0.6, 0.8, 1.0))
    img.SetDirection((0, 0, 1, 1, 0, 0, 0, -1, 0))
    img.SetOrigin((-10.0, 5.0, 20.0))
    path = tmp_path / "scan.nrrd"
    sitk.WriteImage(img, str(path))
    pre = tmp_path / "pre.yaml"
    dump_config(PreprocessConfig(in_plane_size=32, min_brain_fraction=0.0, spacing=[1.2, 1.2, 1.5]), pre)
    out = translate(run, path, tmp_path / "scan_t1.nii.gz", store_config=pre, device="cpu")[0]
    got = sitk.ReadImage(str(out))
    assert got.GetSize() == img.GetSize()
    np.testing.assert_allclose(got.GetDirection(), img.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(got.GetOrigin(), img.GetOrigin(), atol=1e-4)
    data = sitk.GetArrayFromImage(got).transpose(2, 1, 0)
    assert np.all(data[~inside] == 0) and (data[inside] != 0).mean() > 0.99
    nifti = tmp_path / "scan_flair.nii.gz"  # the same volume through the NIfTI path (MONAI resampling)
    sitk.WriteImage(img, str(nifti))
    ref = nib.load(str(translate(run, nifti, tmp_path / "ref.nii.gz", store_config=pre, device="cpu")[0])).get_fdata()
    core = ndimage_erode(inside, 3)
    assert np.abs(data[core] - ref[core]).mean() < 0.05


def ndimage_erode(mask, n):
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=n)


def test_unreadable_sitk_inputs_are_one_line(setup, tmp_path):
    _, _, run, _, volume, _ = setup
    bad = tmp_path / "bad.nrrd"
    bad.write_text("NRRD0004\ntype: float\ndimension: 3\n")
    with pytest.raises(UserInputError, match="bad.nrrd") as exc:
        translate(run, bad, tmp_path / "o.nii.gz", device="cpu")
    _one_line(exc)
    good = tmp_path / "ok.mha"
    sitk.WriteImage(sitk.ReadImage(str(volume)), str(good))
    with pytest.raises(UserInputError, match="must end in"):
        translate(run, good, tmp_path / "o.png", device="cpu")
    assert not (tmp_path / "o.nii.gz").exists()
