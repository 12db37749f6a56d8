"""Find the cases of a BraTS or MSD data folder, whatever the release: :func:`discover`.

Understood layouts (facts from /work/shared/brats-conventions.md; the organisers' and MSD's own file names):

- **BraTS 2018-2021** (label convention ``brats2021``): ``<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]``, at any depth
  (2018/2019 nest them under ``HGG/`` and ``LGG/``; 2020 copies are often uncompressed ``.nii``; 2020 case 355's
  label file is misnamed ``W39_1998.09.19_Segm.nii``, so a lone ``*seg*`` file beside a case without ``_seg`` is
  taken as its labels). Labels 1 necrotic/non-enhancing core, 2 oedema, 4 enhancing.
- **BraTS 2023+** (``brats2023``): ``<case>-{t2f,t1n,t1c,t2w,seg}.nii[.gz]`` (t2f = FLAIR, t1n = T1, t1c = T1ce,
  t2w = T2). Labels 1, 2, 3 (enhancing = 3).
- **MSD Task01_BrainTumour** (``msd``): ``imagesTr/*.nii.gz`` (and ``imagesTs``), 4-D channels last, channel order
  FLAIR, T1w, T1gd, T2w (or as ``dataset.json`` says); labels in ``labelsTr/`` with 1 oedema, 2 non-enhancing /
  necrotic, 3 enhancing. Hidden AppleDouble files (``._BRATS_001.nii.gz``) are skipped, as is every name starting
  with ``.``.

Files are matched by modality suffix within each folder, never by a year's pattern. A case may also hold its
modalities as NRRD or MetaImage files with the same names (``<case>_flair.nrrd``, ``<case>-t2f.mha``), or as a
folder holding one DICOM series, named like a file without its ending (``<case>_flair/`` or ``<case>-t2f/``); they
are read through SimpleITK (:mod:`mri_harmonic.data.sitk_io`). A name that is the modality token alone
(``flair.nrrd``, ``flair/``, ``seg.nii.gz``) belongs to the case named by its folder, so a clinical case may be
``case01/{flair/, t1.nrrd, seg.nii.gz}``. Only folders named by a modality token are asked whether they hold a
DICOM series (a BraTS tree is never scanned for one). Every case's labels are later mapped to the BraTS 2018-2021
convention with :data:`LABEL_MAPS`.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mri_harmonic.errors import UserInputError

#: label value in a convention -> BraTS 2018-2021 value (1 necrotic/non-enhancing core, 2 oedema, 4 enhancing).
LABEL_MAPS: dict[str, dict[int, int]] = {
    "brats2021": {0: 0, 1: 1, 2: 2, 4: 4},
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 4},
    "msd": {0: 0, 1: 2, 2: 1, 3: 4},
}

#: file-name token -> modality, per naming convention.
BRATS2021_TOKENS = {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"}
BRATS2023_TOKENS = {"t2f": "flair", "t1n": "t1", "t1c": "t1ce", "t2w": "t2"}
#: MSD channel order (Task01_BrainTumour dataset.json: 0 FLAIR, 1 T1w, 2 t1gd, 3 T2w).
MSD_CHANNELS = {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}
_MSD_NAMES = {"flair": "flair", "t1w": "t1", "t1": "t1", "t1gd": "t1ce", "t1ce": "t1ce", "t1c": "t1ce", "t2w": "t2", "t2": "t2"}

LAYOUTS_UNDERSTOOD = (
    "BraTS 2018-2021 (<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]), "
    "BraTS 2023+ (<case>-{t2f,t1n,t1c,t2w,seg}.nii[.gz]), "
    "MSD Task01_BrainTumour (imagesTr/*.nii.gz 4-D + labelsTr/); a modality may also be .nrrd / .mha or a folder "
    "holding one DICOM series, named for the modality alone inside its case folder (case01/{flair/,t1.nrrd,seg.nii.gz})"
)

#: file endings of one-file-per-modality volumes: NIfTI, and NRRD / MetaImage (read through SimpleITK)
VOLUME_SUFFIX = r"\.(?:nii(?:\.gz)?|nrrd|nhdr|mha|mhd)"
#: ``<stem>_<token>`` or ``<stem>-<token>``, or the token alone (the case is then named by the folder)
_NAME = r"^(?:(?P<stem>.+)[_-])?(?P<tok>flair|t1ce|t1|t2|t2f|t1n|t1c|t2w|seg)"
_TOKEN_RE = re.compile(rf"{_NAME}{VOLUME_SUFFIX}$", re.IGNORECASE)
#: a modality folder (a DICOM series): the name of a file without its ending
_FOLDER_TOKEN_RE = re.compile(rf"{_NAME}$", re.IGNORECASE)


def _token_match(path: Path, series_folders: set[Path] | frozenset = frozenset()) -> re.Match | None:
    return (_FOLDER_TOKEN_RE if path in series_folders else _TOKEN_RE).match(path.name)


def _stem(m: re.Match, path: Path) -> str:
    """The case a matched name belongs to: its stem, or (a bare token) the folder it lies in."""
    return m["stem"] or path.parent.name


def modality_from_name(path: str | os.PathLike) -> str | None:
    """The modality a BraTS-style file name announces (``*_flair``, ``*-t2f``, ``flair.nrrd``, ...), or None when it
    says none. A folder (a DICOM series) is named like a file without its ending (``flair/``, ``*_flair/``)."""
    path = Path(path)
    m = (_FOLDER_TOKEN_RE if path.is_dir() else _TOKEN_RE).match(path.name)
    if not m:
        return None
    tok = m.group("tok").lower()
    return "seg" if tok == "seg" else {**BRATS2021_TOKENS, **BRATS2023_TOKENS}.get(tok)


@dataclass(frozen=True)
class Source:
    """One image on disk: a 3-D file, a folder holding one DICOM series, or channel ``channel`` of a 4-D
    channels-last file (MSD)."""

    path: Path
    channel: int | None = None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "channel": self.channel}


@dataclass
class Case:
    """One subject: where each modality and the labels live, and how to read the labels."""

    subject: str
    images: dict[str, Source]
    seg: Path | None
    label_convention: str  # key of LABEL_MAPS
    folder: Path = field(default=Path("."))

    @property
    def layout(self) -> str:
        return self.label_convention

    def files(self) -> list[Path]:
        out = sorted({s.path for s in self.images.values()})
        return out + ([self.seg] if self.seg is not None else [])


def is_nifti(name: str) -> bool:
    low = name.lower()
    return low.endswith(".nii") or low.endswith(".nii.gz")


def is_volume_file(name: str) -> bool:
    """NIfTI, NRRD or MetaImage header (the files a case may hold, one per modality)."""
    return re.search(rf"{VOLUME_SUFFIX}$", name, flags=re.IGNORECASE) is not None


def nifti_stem(name: str) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", name, flags=re.IGNORECASE)


def _walk(data_dir: Path) -> tuple[list[Path], set[Path], int]:
    """All non-hidden volumes under ``data_dir`` (sorted): files (NIfTI, NRRD, MetaImage) and folders named by a
    modality token that hold a DICOM series (not entered further; also returned as a set); and the count of other
    non-hidden files."""
    from mri_harmonic.data.sitk_io import dicom_series

    found, series, others = [], set(), 0
    for root, dirs, files in os.walk(data_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in list(dirs):
            if _FOLDER_TOKEN_RE.match(d) and dicom_series(Path(root) / d):
                found.append(Path(root) / d)
                series.add(Path(root) / d)
                dirs.remove(d)
        for f in sorted(files):
            if f.startswith("."):
                continue
            if is_volume_file(f):
                found.append(Path(root) / f)
            else:
                others += 1
    return found, series, others


def _msd_channels(task_dir: Path) -> dict[str, int]:
    """Channel of each modality from ``dataset.json`` ("modality" (MSD) or "channel_names" (nnU-Net v2))."""
    meta_file = task_dir / "dataset.json"
    if not meta_file.is_file():
        return dict(MSD_CHANNELS)
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError):
        raise UserInputError(f"{meta_file} is not valid JSON; fix or remove it (MSD channel order is then assumed FLAIR, T1w, T1gd, T2w)") from None
    names = meta.get("modality") or meta.get("channel_names") or {}
    channels = {}
    for idx, name in names.items():
        mod = _MSD_NAMES.get(str(name).strip().lower())
        if mod is not None:
            channels[mod] = int(idx)
    return channels or dict(MSD_CHANNELS)


def discover(data_dir: str | os.PathLike) -> list[Case]:
    """Find every case under ``data_dir`` in any understood layout (see the module docstring), sorted by subject.

    Raises :class:`UserInputError` when the folder is missing, holds no understood case (the message lists what was
    found and the layouts understood), or names a subject twice.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserInputError(f"data folder {data_dir} does not exist or is not a folder; pass the folder holding the BraTS/MSD cases")
    files, series_folders, n_other = _walk(data_dir)
    cases: list[Case] = []
    used: set[Path] = set()

    # --- MSD: imagesTr / imagesTs with labels in the sibling labelsTr / labelsTs
    for f in files:
        if f.parent.name in ("imagesTr", "imagesTs") and is_nifti(f.name):
            task_dir = f.parent.parent
            channels = _msd_channels(task_dir)
            label = task_dir / f.parent.name.replace("images", "labels") / f.name
            seg = label if label.is_file() else None
            cases.append(Case(nifti_stem(f.name), {m: Source(f, c) for m, c in channels.items()}, seg, "msd", f.parent))
            used.add(f)
            if seg is not None:
                used.add(seg)
    used.update(f for f in files if f.parent.name in ("labelsTr", "labelsTs"))

    # --- BraTS: group <stem>{_,-}<token>.nii[.gz] by folder and stem
    groups: dict[tuple[Path, str], dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    leftovers: dict[Path, list[Path]] = defaultdict(list)
    for f in files:
        if f in used:
            continue
        m = _token_match(f, series_folders)
        if m:
            groups[(f.parent, _stem(m, f))][m["tok"].lower()].append(f)
        else:
            leftovers[f.parent].append(f)
    for (folder, stem), tokens in sorted(groups.items()):
        for tok, paths in tokens.items():
            if len(paths) > 1:
                raise UserInputError(
                    f"case {stem} in {folder} has {len(paths)} '{tok}' files ({', '.join(p.name for p in paths)}); keep one"
                )
        image_tokens = set(tokens) - {"seg"}
        is21, is23 = image_tokens & set(BRATS2021_TOKENS), image_tokens & set(BRATS2023_TOKENS)
        if is21 and is23:
            raise UserInputError(
                f"case {stem} in {folder} mixes BraTS 2018-2021 names ({', '.join(sorted(is21))}) and BraTS 2023 names "
                f"({', '.join(sorted(is23))}); keep one naming per case"
            )
        if not image_tokens:  # a lone label file: nothing to translate
            leftovers[folder].extend(tokens["seg"])
            continue
        table, convention = (BRATS2023_TOKENS, "brats2023") if is23 else (BRATS2021_TOKENS, "brats2021")
        images = {table[t]: Source(p[0]) for t, p in tokens.items() if t != "seg"}
        seg = tokens["seg"][0] if "seg" in tokens else None
        cases.append(Case(stem, images, seg, convention, folder))

    # BraTS 2020 case 355: labels misnamed 'W39_1998.09.19_Segm.nii' -> a lone "*seg*" file beside a case without one.
    by_folder: dict[Path, list[Case]] = defaultdict(list)
    for c in cases:
        by_folder[c.folder].append(c)
    for folder, extra in leftovers.items():
        segs = [p for p in extra if "seg" in p.name.lower()]
        owners = [c for c in by_folder.get(folder, []) if c.seg is None and c.label_convention != "msd"]
        if len(segs) == 1 and len(owners) == 1:
            owners[0].seg = segs[0]

    if not cases:
        examples = ", ".join(str(p.relative_to(data_dir)) for p in files[:5]) or "none"
        raise UserInputError(
            f"no BraTS or MSD case found in {data_dir}: it holds {len(files)} volume(s) (e.g. {examples}) and "
            f"{n_other} other file(s); layouts understood: {LAYOUTS_UNDERSTOOD}"
        )
    seen: dict[str, Case] = {}
    for c in cases:
        if c.subject in seen:
            raise UserInputError(
                f"subject {c.subject} appears twice under {data_dir} (in {seen[c.subject].folder} and {c.folder}); "
                "remove the copy or preprocess the folders separately"
            )
        seen[c.subject] = c
    return sorted(cases, key=lambda c: c.subject)
