"""The MR-physics phantom: determinism, tissue contrast, labels, geometry, file layouts, resuming, CLI, bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from typer.testing import CliRunner

from mri_harmonic.cli import app, main
from mri_harmonic.data.phantom import (
    LAYOUTS,
    case_name,
    generate_phantom,
    simulate_subject,
    simulate_with_fractions,
    write_subject,
)
from mri_harmonic.data.phantom.anatomy import grid_affine, voxel_size
from mri_harmonic.data.phantom.tissue import SEQUENCES, TISSUES, csf_null_ti, signal
from mri_harmonic.errors import UserInputError

SMALL = (48, 56, 40)
MEDIUM = (80, 80, 52)  # 3 mm voxels: enough pure-tissue voxels for contrast checks
BRATS_AFFINE = np.array([[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]], float)


@pytest.fixture(scope="module")
def medium_subjects():
    return [simulate_with_fractions(i, seed=3, shape=MEDIUM) for i in range(4)]


def _median(img, sel):
    assert sel.sum() > 0
    return float(np.median(img[sel]))


# --- physics -------------------------------------------------------------------------------------------------------

def test_flair_inversion_time_nulls_csf():
    ti = csf_null_ti(9000.0, 4309.0)
    assert abs(float(signal(SEQUENCES["flair"], 4309.0, 1886.0, 1.0))) < 1e-6
    long_tr = csf_null_ti(1e9, 4309.0)
    assert long_tr == pytest.approx(4309.0 * np.log(2), rel=1e-9)
    assert ti < long_tr


def test_spin_echo_against_closed_form():
    t = TISSUES["wm"]
    seq = SEQUENCES["t2"]
    expected = t.pd * (1 - np.exp(-seq.tr / t.t1)) * np.exp(-seq.te / t.t2)
    assert float(signal(seq, t.t1, t.t2, t.pd)) == pytest.approx(expected, rel=1e-12)


# --- simulation ----------------------------------------------------------------------------------------------------

def test_deterministic_for_a_seed_and_different_otherwise():
    a, b = simulate_subject(1, seed=5, shape=SMALL), simulate_subject(1, seed=5, shape=SMALL)
    for m in a.images:
        np.testing.assert_array_equal(a.images[m], b.images[m])
    np.testing.assert_array_equal(a.seg, b.seg)
    assert a.params == b.params
    c, d = simulate_subject(1, seed=6, shape=SMALL), simulate_subject(2, seed=5, shape=SMALL)
    assert not np.array_equal(a.images["flair"], c.images["flair"])
    assert not np.array_equal(a.images["flair"], d.images["flair"])


def test_arrays_types_and_skull_stripping(medium_subjects):
    for subj, truth in medium_subjects:
        assert subj.seg.dtype == np.uint8 and subj.seg.shape == MEDIUM
        for m in ("flair", "t1", "t1ce", "t2"):
            img = subj.images[m]
            assert img.dtype == np.float32 and img.shape == MEDIUM
            assert np.all(img[~truth["mask"]] == 0)  # background exactly 0
            assert img[truth["mask"]].min() >= 1  # brain never 0, so mask = image > 0
            np.testing.assert_array_equal(img, np.rint(img))  # int16-representable
            assert img.max() < 32767
        assert not subj.seg[~truth["mask"]].any()


def test_tissue_contrast(medium_subjects):
    pooled = {}
    for subj, truth in medium_subjects:
        healthy = subj.seg == 0
        sel = {
            "wm": (truth["wm"] > 0.9) & healthy, "gm": (truth["gm"] > 0.9) & healthy,
            "csf": (truth["csf"] > 0.9) & healthy, "oedema": subj.seg == 2, "enhancing": subj.seg == 4,
        }
        for m, img in subj.images.items():
            norm = img / _median(img, sel["wm"])  # per subject: gains and bias differ
            for t, s in sel.items():
                pooled.setdefault((m, t), []).append(norm[s])
    med = {k: float(np.median(np.concatenate(v))) for k, v in pooled.items()}
    # CSF: dark in FLAIR and T1, bright in T2
    assert med["flair", "csf"] < 0.5 and med["t1", "csf"] < 0.7 and med["t2", "csf"] > 2.0
    # WM brighter than GM in T1; GM brighter than WM in T2 and FLAIR
    assert med["t1", "gm"] < 0.9 and med["t2", "gm"] > 1.2 and med["flair", "gm"] > 1.1
    # oedema bright in FLAIR (above grey matter too)
    assert med["flair", "oedema"] > 1.4 and med["flair", "oedema"] > med["flair", "gm"]
    # enhancing tumour brighter in T1ce than in T1, relative to white matter
    assert med["t1ce", "enhancing"] > 1.2 * med["t1", "enhancing"]
    assert med["t1ce", "enhancing"] > 1.1


def test_labels_values_and_nesting(medium_subjects):
    seen = set()
    for subj, _ in medium_subjects:
        values = set(np.unique(subj.seg).tolist())
        assert values <= {0, 1, 2, 4}
        seen |= values
        for t in subj.params["tumours"]:  # the tumour centre lies in its core
            assert subj.seg[tuple(t["centre_voxel"])] in ({1} if t["necrosis_ratio"] > 0 else {4})
        nec = subj.seg == 1
        if nec.any():  # necrosis sits inside the core: it touches background (0) only rarely
            touches_bg = ndimage.binary_dilation(subj.seg == 0) & nec
            assert touches_bg.sum() <= 0.05 * nec.sum()
        core = np.isin(subj.seg, (1, 4))
        whole = subj.seg > 0
        assert core.sum() > 0 and whole.sum() > core.sum()  # oedema surrounds the core
        for k in (1, 2, 4):
            assert subj.params["label_voxels"][str(k)] == int((subj.seg == k).sum())
    assert seen == {0, 1, 2, 4}


def test_geometry_holds_whole_brain_and_matches_brats():
    np.testing.assert_array_equal(grid_affine((240, 240, 155)), BRATS_AFFINE)
    assert nib.aff2axcodes(grid_affine(SMALL)) == ("L", "P", "S")
    s = voxel_size(SMALL)
    assert s == pytest.approx(5.0)
    assert all(n * s >= f for n, f in zip(SMALL, (240, 240, 155)))
    subj = simulate_subject(0, seed=0, shape=SMALL)
    brain = subj.images["t1"] > 0
    for ax in range(3):  # nothing cut at the field-of-view border
        assert not brain.take([0, -1], axis=ax).any()
    assert 0.05 < brain.mean() < 0.6


# --- files ---------------------------------------------------------------------------------------------------------

def _both_readers(path):
    img = nib.load(str(path))
    itk = sitk.ReadImage(str(path))
    return img, itk


@pytest.fixture(scope="module")
def small_subject():
    return simulate_subject(0, seed=2, shape=SMALL)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_write_subject_layouts_load_with_nibabel_and_simpleitk(tmp_path, small_subject, layout):
    subj = small_subject
    out = write_subject(subj, tmp_path, 0, layout)
    name = case_name(0, layout)
    s = voxel_size(SMALL)
    if layout == "msd":
        img, itk = _both_readers(out)
        assert out == tmp_path / "imagesTr" / "BRATS_001.nii.gz"
        assert img.shape == (*SMALL, 4) and img.get_data_dtype() == np.int16
        data = np.asarray(img.dataobj)
        for c, m in enumerate(("flair", "t1", "t1ce", "t2")):
            np.testing.assert_array_equal(data[..., c], subj.images[m])
        arr = sitk.GetArrayFromImage(itk)  # SimpleITK: a 4-D image, array order (channel, z, y, x)
        assert arr.shape == (4, SMALL[2], SMALL[1], SMALL[0])
        np.testing.assert_array_equal(arr.transpose(3, 2, 1, 0), data)
        lab = np.asarray(nib.load(str(tmp_path / "labelsTr" / "BRATS_001.nii.gz")).dataobj)
        expected = np.select([subj.seg == 1, subj.seg == 2, subj.seg == 4], [2, 1, 3], 0)
        np.testing.assert_array_equal(lab, expected)
        files = {"img": out}
    else:
        assert out == tmp_path / name and out.is_dir()
        suffixes = {"brats2021": ["_flair", "_t1", "_t1ce", "_t2", "_seg"],
                    "brats2023": ["-t2f", "-t1n", "-t1c", "-t2w", "-seg"]}[layout]
        assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}{x}.nii.gz" for x in suffixes)
        files = {}
        for m, x in zip(("flair", "t1", "t1ce", "t2", "seg"), suffixes):
            files[m] = out / f"{name}{x}.nii.gz"
        for m in ("flair", "t1", "t1ce", "t2"):
            img, itk = _both_readers(files[m])
            assert img.get_data_dtype() == np.int16 and img.shape == SMALL
            np.testing.assert_array_equal(np.asarray(img.dataobj), subj.images[m])
            np.testing.assert_array_equal(sitk.GetArrayFromImage(itk).transpose(2, 1, 0), subj.images[m])
        seg_img = nib.load(str(files["seg"]))
        seg = np.asarray(seg_img.dataobj)
        if layout == "brats2021":
            assert seg.dtype == np.uint8
            np.testing.assert_array_equal(seg, subj.seg)
        else:  # the real 2023 quirk: float32 labels, qform only, enhancing = 3
            assert seg.dtype == np.float32 and int(seg_img.header["sform_code"]) == 0
            np.testing.assert_array_equal(seg.astype(np.uint8), np.where(subj.seg == 4, 3, subj.seg))
    for path in files.values():
        img, itk = _both_readers(path)
        np.testing.assert_allclose(img.affine, grid_affine(SMALL))
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        # SimpleITK works in LPS: identity direction, origin (0, -(Y-1)s, 0) as for real BraTS (0, -239, 0)
        assert itk.GetSpacing()[:3] == pytest.approx((s, s, s))
        assert itk.GetOrigin()[:3] == pytest.approx((0.0, -(SMALL[1] - 1) * s, 0.0))
        assert np.allclose(np.array(itk.GetDirection()).reshape(itk.GetDimension(), -1)[:3, :3], np.eye(3))


def test_generate_parallel_equals_serial_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "ph"
    paths = generate_phantom(out, subjects=2, seed=4, shape=SMALL, layout="msd", workers=2, progress=False)
    assert [p.name for p in paths] == ["BRATS_001.nii.gz", "BRATS_002.nii.gz"]
    ref = simulate_subject(1, seed=4, shape=SMALL)
    data = np.asarray(nib.load(str(paths[1])).dataobj)
    np.testing.assert_array_equal(data[..., 0], ref.images["flair"])
    meta = json.loads((out / "phantom.json").read_text())
    assert meta["seed"] == 4 and meta["shape"] == list(SMALL) and meta["layout"] == "msd"
    assert meta["subjects"][1]["tumours"] == json.loads(json.dumps(ref.params["tumours"]))
    assert {"scale", "rotation_deg"} <= set(meta["subjects"][0]["anatomy"])
    assert "noise_sigma" in meta["subjects"][0]["modalities"]["flair"]
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"} and ds["numTraining"] == 2
    assert ds["labels"]["1"] == "edema" and ds["labels"]["3"] == "enhancing tumour"

    # restart after a "kill": subject 1's record lost -> only subject 1 is simulated again
    (out / ".phantom" / "subject_00001.json").unlink()
    import mri_harmonic.data.phantom.writer as writer

    calls = []
    real = writer.simulate_subject
    monkeypatch.setattr(writer, "simulate_subject", lambda i, *a: calls.append(i) or real(i, *a))
    generate_phantom(out, subjects=2, seed=4, shape=SMALL, layout="msd", workers=1, progress=False)
    assert calls == [1]
    with pytest.raises(UserInputError, match="seed"):
        generate_phantom(out, subjects=2, seed=5, shape=SMALL, layout="msd", workers=1, progress=False)


# --- CLI and bad input ---------------------------------------------------------------------------------------------

def test_cli_writes_layout(tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["phantom", str(out), "--subjects", "1", "--seed", "1", "--shape", "48,56,40",
                                   "--layout", "brats2023", "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    case = out / "BraTS-GLI-00000-000"
    assert (case / "BraTS-GLI-00000-000-t2f.nii.gz").is_file() and (out / "phantom.json").is_file()


@pytest.mark.parametrize("args, needle", [
    (["--shape", "48,56"], "--shape"),
    (["--shape", "a,b,c"], "--shape"),
    (["--layout", "nnunet"], "layout"),
    (["--subjects", "0"], "--subjects"),
    (["--workers", "0"], "--workers"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, needle):
    code = main(["phantom", str(tmp_path / "o"), "--shape", "48,56,40", *args] if "--shape" not in args
                else ["phantom", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and needle in err and "\n" not in err


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot write"):
        generate_phantom(blocker / "out", subjects=1, shape=SMALL, progress=False)
    with pytest.raises(UserInputError, match="shape"):
        simulate_subject(0, shape=(48, 56))


def test_mni_maps_match_nilearn_public_loaders():
    from nilearn import datasets

    from mri_harmonic.data.phantom.anatomy import _read_unit

    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    np.testing.assert_array_equal(_read_unit("gm"), gm)
    np.testing.assert_array_equal(_read_unit("wm"), wm)
    np.testing.assert_array_equal(_read_unit("t1") > 0.2, mask)
