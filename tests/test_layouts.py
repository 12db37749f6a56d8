"""Layout discovery (BraTS 2018-2021, BraTS 2023+, MSD) and label conventions."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from mri_harmonic.data.layouts import LABEL_MAPS, discover
from mri_harmonic.data.transforms import BadVolumeError, convert_labels
from mri_harmonic.errors import UserInputError

SHAPE = (48, 56, 40)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """Three subjects written by the phantom in each layout."""
    from mri_harmonic.data.phantom import generate_phantom

    root = tmp_path_factory.mktemp("phantoms")
    for layout in ("brats2021", "brats2023", "msd"):
        generate_phantom(root / layout, subjects=3, seed=0, shape=SHAPE, layout=layout, workers=1, progress=False)
    return root


def _tiny(path, value=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), value, np.float32), np.eye(4)), path)


def test_brats2021_layout(phantoms):
    cases = discover(phantoms / "brats2021")
    assert [c.subject for c in cases] == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    c = cases[0]
    assert set(c.images) == {"flair", "t1", "t1ce", "t2"}
    assert c.images["t1ce"].path.name == "BraTS2021_00000_t1ce.nii.gz"
    assert c.images["t1"].path.name == "BraTS2021_00000_t1.nii.gz" and c.images["t1"].channel is None
    assert c.seg.name == "BraTS2021_00000_seg.nii.gz"
    assert c.label_convention == "brats2021"


def test_brats2023_layout(phantoms):
    cases = discover(phantoms / "brats2023")
    assert [c.subject for c in cases] == ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]
    c = cases[1]
    names = {m: s.path.name for m, s in c.images.items()}
    assert names == {"flair": "BraTS-GLI-00001-000-t2f.nii.gz", "t1": "BraTS-GLI-00001-000-t1n.nii.gz",
                     "t1ce": "BraTS-GLI-00001-000-t1c.nii.gz", "t2": "BraTS-GLI-00001-000-t2w.nii.gz"}
    assert c.seg.name == "BraTS-GLI-00001-000-seg.nii.gz" and c.label_convention == "brats2023"


def test_msd_layout_skips_hidden_files(phantoms, tmp_path):
    data = tmp_path / "Task01_BrainTumour"
    shutil.copytree(phantoms / "msd", data)
    (data / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork
    (data / "labelsTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    cases = discover(data)
    assert [c.subject for c in cases] == ["BRATS_001", "BRATS_002", "BRATS_003"]
    c = cases[0]
    assert {m: s.channel for m, s in c.images.items()} == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}
    assert {s.path.name for s in c.images.values()} == {"BRATS_001.nii.gz"}
    assert c.seg == data / "labelsTr" / "BRATS_001.nii.gz" and c.label_convention == "msd"


def test_msd_channel_order_from_dataset_json(tmp_path):
    data = tmp_path / "task"
    _tiny(data / "imagesTr" / "X_001.nii.gz")
    (data / "dataset.json").write_text('{"modality": {"0": "T1w", "1": "FLAIR"}}')
    (c,) = discover(data)
    assert {m: s.channel for m, s in c.images.items()} == {"t1": 0, "flair": 1}
    assert c.seg is None


def test_nii_and_niigz_nested_at_any_depth(phantoms, tmp_path):
    # BraTS 2018 style: HGG/<case>/..., uncompressed .nii for one case (as widely shared BraTS 2020 copies)
    data = tmp_path / "MICCAI_BraTS_2018"
    shutil.copytree(phantoms / "brats2021" / "BraTS2021_00000", data / "HGG" / "BraTS2021_00000")
    src = phantoms / "brats2021" / "BraTS2021_00001"
    dst = data / "LGG" / "deeper" / "BraTS2021_00001"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        img = nib.load(f)
        nib.save(img, dst / f.name.replace(".nii.gz", ".nii"))
    flat = tmp_path / "flat"  # un-nested: all files directly in the data folder
    flat.mkdir()
    for f in (phantoms / "brats2021" / "BraTS2021_00002").iterdir():
        shutil.copy(f, flat / f.name)
    cases = discover(data)
    assert [c.subject for c in cases] == ["BraTS2021_00000", "BraTS2021_00001"]
    assert cases[1].images["flair"].path.suffix == ".nii" and cases[1].seg.name == "BraTS2021_00001_seg.nii"
    assert np.array_equal(nib.load(cases[1].images["t1"].path).get_fdata(), nib.load(src / "BraTS2021_00001_t1.nii.gz").get_fdata())
    (flat_case,) = discover(flat)
    assert flat_case.subject == "BraTS2021_00002" and set(flat_case.images) == {"flair", "t1", "t1ce", "t2"}


def test_brats2020_misnamed_label_file(tmp_path):
    case = tmp_path / "BraTS20_Training_355"
    for m in ("flair", "t1", "t1ce", "t2"):
        _tiny(case / f"BraTS20_Training_355_{m}.nii")
    _tiny(case / "W39_1998.09.19_Segm.nii")
    (c,) = discover(tmp_path)
    assert c.subject == "BraTS20_Training_355" and c.seg.name == "W39_1998.09.19_Segm.nii"


def test_missing_modality_is_discovered_not_an_error(tmp_path):
    _tiny(tmp_path / "A" / "A_flair.nii.gz")
    (c,) = discover(tmp_path)
    assert set(c.images) == {"flair"} and c.seg is None


def test_unknown_layout_error_lists_what_was_found(tmp_path):
    _tiny(tmp_path / "scans" / "patient1_axial.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserInputError) as err:
        discover(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "scans/patient1_axial.nii.gz" in msg and "1 other file" in msg
    assert "BraTS 2018-2021" in msg and "BraTS 2023" in msg and "MSD" in msg


def test_missing_folder_and_duplicates(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        discover(tmp_path / "nope")
    _tiny(tmp_path / "a" / "S1_flair.nii.gz")
    _tiny(tmp_path / "b" / "S1_flair.nii.gz")
    with pytest.raises(UserInputError, match="appears twice"):
        discover(tmp_path)


def test_mixed_naming_in_one_case_is_an_error(tmp_path):
    _tiny(tmp_path / "S1_flair.nii.gz")
    _tiny(tmp_path / "S1-t1n.nii.gz")
    _tiny(tmp_path / "S1_t1.nii.gz")
    _tiny(tmp_path / "S1-t2f.nii.gz")
    # S1_* and S1-* share the stem S1 in one folder
    with pytest.raises(UserInputError, match="mixes"):
        discover(tmp_path)


@pytest.mark.parametrize("convention", ["brats2021", "brats2023", "msd"])
def test_label_mapping_to_brats2021(convention):
    # necrotic core, oedema, enhancing as each convention writes them (brats-conventions.md label table)
    written = {"brats2021": (1, 2, 4), "brats2023": (1, 2, 3), "msd": (2, 1, 3)}[convention]
    seg = np.zeros((3, 4, 4), np.float32)
    seg[0, 0, 0], seg[1, 1, 1], seg[2, 2, 2] = written
    out = convert_labels(seg, convention)
    assert out.dtype == np.uint8
    assert (out[0, 0, 0], out[1, 1, 1], out[2, 2, 2]) == (1, 2, 4)
    assert out.sum() == 7 and set(np.unique(out)) == {0, 1, 2, 4}
    assert set(LABEL_MAPS[convention].values()) == {0, 1, 2, 4}


def test_label_values_outside_the_convention_are_rejected():
    seg = np.zeros((2, 2, 2), np.float32)
    seg[0, 0, 0] = 4  # BraTS 2024 post-treatment: 4 = resection cavity, not a 2023 label
    with pytest.raises(BadVolumeError, match=r"label value\(s\) \[4\]"):
        convert_labels(seg, "brats2023")
    seg[0, 0, 0] = 1.5
    with pytest.raises(BadVolumeError, match="non-integer"):
        convert_labels(seg, "brats2021")


def test_msd_file_that_is_not_4d_is_skipped_with_reason(tmp_path):
    from mri_harmonic.data.config import PreprocessConfig
    from mri_harmonic.data.transforms import BadSubjectError, run_chain

    _tiny(tmp_path / "imagesTr" / "BRATS_001_0000.nii.gz", value=5.0)
    (case,) = discover(tmp_path)
    with pytest.raises(BadSubjectError, match="must be 4-D channels-last"):
        run_chain(case, PreprocessConfig(in_plane_size=16))


def test_bare_modality_names_and_dicom_series_folders(tmp_path):
    """``case01/{flair/ (a DICOM series), t1.nrrd, seg.nii.gz}``: one case named by its folder; a modality-named
    folder without a DICOM series is an ordinary folder (its files are discovered as usual)."""
    import SimpleITK as sitk
    from conftest import write_dicom_series

    img = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    write_dicom_series(img, tmp_path / "case01" / "flair")
    sitk.WriteImage(img, str(tmp_path / "case01" / "t1.nrrd"))
    _tiny(tmp_path / "case01" / "seg.nii.gz")
    _tiny(tmp_path / "t2" / "case02_flair.nii.gz")  # a folder named like a modality, holding no DICOM
    c1, c2 = discover(tmp_path)
    assert c1.subject == "case01" and c1.label_convention == "brats2021"
    assert {m: s.path for m, s in c1.images.items()} == {"flair": tmp_path / "case01" / "flair", "t1": tmp_path / "case01" / "t1.nrrd"}
    assert c1.seg == tmp_path / "case01" / "seg.nii.gz"
    assert c2.subject == "case02" and c2.images["flair"].path.name == "case02_flair.nii.gz"
