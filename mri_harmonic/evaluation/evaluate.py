"""``mri-harmonic evaluate``: translate every slice of a store split with each run, score it, write a report.

For every run and every direction (a run trained ``flair2t1`` still has both generators: ``G_AB`` for
Flair -> T1 and ``G_BA`` for T1 -> Flair), each slice of the split is translated (batched, no gradients, bf16
autocast on CUDA) and compared with the real target slice of the same subject and slice index. Outputs in
``out_dir``:

============================  =====================================================================================
``per_slice.csv``             subject, slice_index, run, method, group, seed, direction, region, scale, MAE, MSE, PSNR,
                              SSIM
``summary.csv``               mean, std, n, n_inf per run x method x direction x region x scale x metric
``table1.csv`` / ``.md``      the paper's Table 1 layout (whole slice, 0-255), the paper's figures in a separate block
``comparison.csv``            paired differences of each method (group of seeds) against the baseline (:mod:`.compare`)
``tumour_per_slice.csv``      per slice: lesions kept / erased / wrong-direction, invented lesions (see :mod:`.tumour`)
``tumour_lesions.csv``        per lesion: size, contrast against NAWM in the real and the translated slice, outcome
``tumour_summary.csv``        rates per run x direction
``figures/*.png``             sample grids per direction, metric box plots, training loss curves
``reader_study/``             blinded reader-study sheet (``--reader-study N``)
``evaluation.json``           inputs: runs (checkpoint, step, config hash), store (path, config hash), split, device
``report.md``                 conventions, tables, figures, inputs
============================  =====================================================================================

From Python, :func:`compute_evaluation` returns the tables (an :class:`EvaluationResult`) without writing anything
and :func:`write_evaluation` writes them; :func:`evaluate` is the two.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mri_harmonic.directions import DIRECTIONS as DIRECTION_MODALITIES
from mri_harmonic.errors import UserInputError
from mri_harmonic.methods import BASELINE

N_SAMPLE_ROWS = 6
#: Slice filters of :func:`evaluate`: every slice, only healthy ones (no tumour label) or only tumorous ones (at least
#: ``TumourCheckConfig.min_lesion_pixels`` labelled pixels; :func:`~mri_harmonic.data.datasets.slice_kinds`).
SLICE_FILTERS = ("all", "healthy", "tumour")
#: Label and method of the no-translation reference row: the input slice scored as if it were the translation.
REFERENCE_RUN, REFERENCE_METHOD = "input-as-output", "identity"


@dataclass
class EvaluatedRun:
    """A loaded run plus what the report needs about it."""

    label: str
    path: Path
    loaded: Any  # mri_harmonic.checkpoint.LoadedRun
    config_hash: str
    seed: int = 0
    group: str = ""  # runs that differ only in their seed share a group (a method in the comparison)


@dataclass
class EvaluationContext:
    """What :func:`write_evaluation` needs beyond the tables: the runs, the store, the kept images, the options."""

    runs: list[EvaluatedRun]
    store: Any  # mri_harmonic.data.store.SliceStore
    split: str
    directions: list[str]
    device: Any  # torch.device
    kept: dict[int, dict[str, Any]]  # dataset position -> images for figures / reader study
    sample_positions: list[int]
    reader_positions: list[int]
    tumour_config: Any  # mri_harmonic.evaluation.tumour.TumourCheckConfig
    zero_background: bool
    seed: int
    amp: bool
    slices: str = "all"


@dataclass
class EvaluationResult:
    out_dir: Path | None  # None until written (:func:`write_evaluation`)
    per_slice: pd.DataFrame
    summary: pd.DataFrame
    table1: pd.DataFrame
    tumour: pd.DataFrame
    tumour_summary: pd.DataFrame
    tumour_lesions: pd.DataFrame | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    comparison: pd.DataFrame | None = None  # paired differences vs the baseline run (see .compare), when > 1 run
    baseline: str | None = None
    context: EvaluationContext | None = None


def parse_directions(directions: str | Sequence[str]) -> list[str]:
    """``"both"`` -> both directions; a name or list of names -> checked list."""
    if isinstance(directions, str):
        directions = list(DIRECTION_MODALITIES) if directions == "both" else [directions]
    out = list(dict.fromkeys(directions))
    for d in out:
        if d not in DIRECTION_MODALITIES:
            raise UserInputError(f"`directions` {d!r} is not known; use both, {', '.join(DIRECTION_MODALITIES)}")
    if not out:
        raise UserInputError("`directions` names no direction; use both, flair2t1 or t12flair")
    return out


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Short unique labels: the folder name, extended by as many parent folders (of the absolute path) as it takes
    to tell runs apart (``a/run``, ``b/run``); the same folder given twice gets ``#k``."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    depth = [1] * len(parts)
    while True:
        labels = ["/".join(ps[-d:]) for ps, d in zip(parts, depth)]
        grow = [i for i, lab in enumerate(labels)
                if any(labels[j] == lab and parts[j] != parts[i] for j in range(len(parts))) and depth[i] < len(parts[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 and labels.count(lab) == 1 else f"{lab}#{seen[lab]}")
    return out


def select_slices(manifest: pd.DataFrame, image_size, slices: str = "all", min_pixels: int | None = None) -> pd.DataFrame:
    """The rows of a split's manifest that ``slices`` keeps (:data:`SLICE_FILTERS`), re-indexed from 0; a filter
    that keeps nothing is a one-line error. ``min_pixels``: labelled pixels of a tumorous slice (default
    :data:`~mri_harmonic.data.datasets.TUMOUR_MIN_PIXELS`)."""
    from mri_harmonic.data.datasets import TUMOUR_MIN_PIXELS, slice_kinds

    min_pixels = TUMOUR_MIN_PIXELS if min_pixels is None else min_pixels
    if slices not in SLICE_FILTERS:
        raise UserInputError(f"`slices` {slices!r} is not known; use {', '.join(SLICE_FILTERS)}")
    if slices == "all":
        return manifest
    healthy, tumorous = slice_kinds(manifest, image_size, min_pixels)
    keep = healthy if slices == "healthy" else tumorous
    if not keep.any():
        raise UserInputError(f"`slices` {slices!r}: the split has no such slice (healthy: no tumour label; tumour: >= "
                             f"{min_pixels} labelled pixels) among its {len(manifest)}; use another split or `slices`")
    return manifest[keep].reset_index(drop=True)


def pick_slices(manifest: pd.DataFrame, n: int, seed: int = 0) -> list[int]:
    """``n`` dataset positions, seeded: slices with tumour (``tumour_fraction`` > 0) first, then the rest; within
    each group subjects take turns, so the picks spread over as many subjects as possible."""
    if n <= 0 or not len(manifest):
        return []
    rng = np.random.default_rng(seed)
    pos = np.arange(len(manifest))
    tumour = manifest["tumour_fraction"].to_numpy() > 0 if "tumour_fraction" in manifest else np.zeros(len(pos), bool)
    subjects = manifest["subject"].astype(str).to_numpy() if "subject" in manifest else np.zeros(len(pos)).astype(str)

    def spread(group: np.ndarray) -> np.ndarray:
        perm = rng.permutation(group)
        turn, seen = [], {}
        for p in perm:  # k-th pick of a subject goes to round k
            turn.append(seen.get(subjects[p], 0))
            seen[subjects[p]] = turn[-1] + 1
        return perm[np.argsort(turn, kind="stable")]

    order = np.concatenate([spread(pos[tumour]), spread(pos[~tumour])])
    return sorted(int(i) for i in order[:n])


#: Config keys that do not change what a run learns; with ``seed`` they are left out when runs are grouped.
NOT_METHOD_KEYS = frozenset({"seed", "device", "data.num_workers", "log_every", "sample_every", "checkpoint_every",
                             "keep_checkpoints", "sample_slices", "tensorboard"})


def group_runs(evaluated: Sequence[EvaluatedRun]) -> None:
    """Set ``seed`` and ``group`` of each run: runs whose configs differ only in ``seed`` (and keys that change
    nothing learnt, :data:`NOT_METHOD_KEYS`) form one group, named after the method when the method has a single
    group, else after the group's first run. ``amp`` counts as the precision the run recorded training in, where it
    did (``auto`` and ``off`` that both trained in fp32 are one group; ``auto`` in bf16 and in fp32 are two). The
    ``model`` and ``loss`` sections are read through their dataclasses, so a key added to the package after a run was
    trained takes its default there (as a resume reads it) instead of splitting that run from later seeds."""
    from mri_harmonic.config import config_hash, from_dict, to_dict
    from mri_harmonic.models.config import LossConfig, ModelConfig

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    keys = {}
    for r in evaluated:
        saved = dict(to_dict(r.loaded.config))
        for section, cls in (("model", ModelConfig), ("loss", LossConfig)):
            saved[section] = to_dict(from_dict(cls, saved.get(section, {}), source=f"run {r.path} (config)", prefix=section))
        cfg = flat(saved)
        if r.loaded.precision is not None:  # `amp: auto` resolves per machine: group by what the run trained in
            cfg["amp"] = r.loaded.precision
        r.seed = int(cfg.get("seed", 0))
        keys[r.label] = (r.loaded.method, config_hash({k: v for k, v in cfg.items() if k not in NOT_METHOD_KEYS}))
    groups: dict[tuple, list[EvaluatedRun]] = {}
    for r in evaluated:
        groups.setdefault(keys[r.label], []).append(r)
    per_method = {m: sum(1 for (mm, _) in groups if mm == m) for (m, _) in groups}
    for (method, _), members in groups.items():
        seeds = [m.seed for m in members]
        if len(set(seeds)) != len(seeds):
            raise UserInputError(
                f"runs {', '.join(str(m.path) for m in members)} have the same config and the same seed "
                f"({sorted(seeds)}); evaluate one of them, or train the others with another seed")
        for m in members:
            m.group = method if per_method[method] == 1 else members[0].label


def shown_runs(evaluated: Sequence[EvaluatedRun]) -> list[EvaluatedRun]:
    """The runs that sample figures and the reader study show: one per group, its lowest training seed, in evaluation
    order. Readers compare methods (the paper's Table 3), and a grid of every seed of every method is unreadable;
    metrics, tumour checks and the paired comparison use every run."""
    first: dict[str, EvaluatedRun] = {}
    for r in evaluated:
        if r.group not in first or r.seed < first[r.group].seed:
            first[r.group] = r
    return [r for r in evaluated if first[r.group] is r]


def load_runs(runs: Sequence[str | os.PathLike], store, device, checkpoint: str | int = "latest") -> list[EvaluatedRun]:
    """Load every run; a checkpoint of another slice size than the store -> one-line error naming it."""
    from mri_harmonic.checkpoint import load_run
    from mri_harmonic.config import config_hash

    if isinstance(runs, (str, os.PathLike)):
        runs = [runs]
    if not runs:
        raise UserInputError("no run given; pass one or more run folders written by `mri-harmonic train`")
    paths = [Path(r) for r in runs]
    out = []
    for label, path in zip(run_labels(paths), paths):
        loaded = load_run(path, device=device, checkpoint=checkpoint)
        if tuple(loaded.image_size) != tuple(store.image_size):
            raise UserInputError(
                f"run {path} was trained on {loaded.image_size[0]}x{loaded.image_size[1]} slices (checkpoint "
                f"{loaded.checkpoint_path}) but store {store.path} holds {store.image_size[0]}x{store.image_size[1]}; "
                "evaluate it on a store preprocessed with the same in_plane_size and spacing as its training store"
            )
        out.append(EvaluatedRun(label=label, path=path, loaded=loaded, config_hash=config_hash(loaded.config)))
    group_runs(out)
    return out


def evaluate(
    runs: Sequence[str | os.PathLike],
    store: str | os.PathLike,
    split: str = "test",
    directions: str | Sequence[str] = "both",
    out_dir: str | os.PathLike = "reports/evaluation",
    reader_study: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    *,
    zero_background: bool = True,
    amp: bool = True,
    samples: int = N_SAMPLE_ROWS,
    seed: int = 0,
    tumour_config=None,
    progress: bool = True,
    reference: bool = True,
    checkpoint: str | int = "latest",
    slices: str = "all",
) -> EvaluationResult:
    """Evaluate ``runs`` on ``split`` of ``store``; write tables, figures and ``report.md`` to ``out_dir``.

    Args:
        runs: run folders of ``mri-harmonic train`` (each with ``checkpoints/latest.pt``).
        store: slice store folder (``mri-harmonic preprocess`` output) holding both modalities of each direction.
        split: store split to evaluate (``test`` by default).
        directions: ``"both"``, ``"flair2t1"`` or ``"t12flair"`` (or a list).
        out_dir: report folder (created; files in it are replaced atomically).
        reader_study: if > 0, also write a blinded reader-study sheet with that many slices (tumour slices first,
            seeded) of the first evaluated direction (Flair -> T1 when evaluated, as the paper's study): with
            several runs, readers rate each output and pick the one they prefer; with one run, each case shows the
            real target or the translation and readers answer real or synthetic (a realism study).
        batch_size: slices per forward pass.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
        zero_background: set translations to 0 outside the store's brain mask, as ``mri-harmonic translate`` does
            (its outputs are zero outside the input's brain); ``False`` scores the raw network output.
        amp: bf16 autocast on CUDA (as in training); ``False`` translates in fp32 (bf16 rounds outputs to
            ~2^-9 relative, a fraction of a grey level). No effect on CPU.
        samples: rows in each sample-grid figure.
        seed: seed of the slice choice for figures and the reader study.
        tumour_config: :class:`~mri_harmonic.evaluation.tumour.TumourCheckConfig` (defaults when ``None``).
        reference: also score the untranslated input against the target (row ``input-as-output``, method
            ``identity``, zeroed outside the brain like the translations): the floor a translation must beat. In
            the metric tables, the tumour checks and the paired comparison; not in figures or the reader study.
        checkpoint: which checkpoint of every run: ``latest`` (default), ``step_N`` or a path.
        slices: ``all`` (default), ``healthy`` (only slices without a tumour label) or ``tumour`` (only slices with
            at least ``tumour_config.min_lesion_pixels`` labelled pixels), e.g. to score invented lesions on healthy
            slices and erased ones on tumorous slices (``pipelines/hallucination_stress.py``).

    Runs that differ only in their training ``seed`` are pooled into one group (:func:`group_runs`) in the paired
    comparison, whose interval then covers training seeds as well as test subjects (:mod:`.compare`).
    """
    from mri_harmonic.utils.io import ensure_writable_dir

    _check_options(reader_study, batch_size)
    parse_directions(directions)
    out_dir = ensure_writable_dir(out_dir, "`out_dir` folder")  # before the (slow) evaluation
    result = compute_evaluation(runs, store, split, directions, reader_study, batch_size, device,
                                zero_background=zero_background, amp=amp, samples=samples, seed=seed,
                                tumour_config=tumour_config, progress=progress, reference=reference, checkpoint=checkpoint,
                                slices=slices)
    return write_evaluation(result, out_dir)


def _check_options(reader_study: int, batch_size: int) -> None:
    if batch_size < 1:
        raise UserInputError(f"`batch_size` must be >= 1, got {batch_size}")
    if reader_study < 0:
        raise UserInputError(f"`reader_study` must be >= 0 slices, got {reader_study}")


def compute_evaluation(
    runs: Sequence[str | os.PathLike],
    store: str | os.PathLike,
    split: str = "test",
    directions: str | Sequence[str] = "both",
    reader_study: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    *,
    zero_background: bool = True,
    amp: bool = True,
    samples: int = N_SAMPLE_ROWS,
    seed: int = 0,
    tumour_config=None,
    progress: bool = True,
    reference: bool = True,
    checkpoint: str | int = "latest",
    slices: str = "all",
) -> EvaluationResult:
    """The computing core of :func:`evaluate`: translate and score, return the tables (and, in ``context``, what
    :func:`write_evaluation` needs for figures and the reader study); writes nothing. Arguments as :func:`evaluate`.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from mri_harmonic.data.datasets import PairedSliceDataset
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.metrics import MetricAccumulator, summarise
    from mri_harmonic.evaluation.regions import region_masks
    from mri_harmonic.evaluation.tables import table1
    from mri_harmonic.evaluation.translate import translate_batch
    from mri_harmonic.evaluation.tumour import TumourCheckConfig, summarise_tumour, tumour_fidelity_batch
    from mri_harmonic.utils.device import resolve_device

    _check_options(reader_study, batch_size)
    dirs = parse_directions(directions)
    modalities = tuple(dict.fromkeys(m for d in dirs for m in DIRECTION_MODALITIES[d]))
    slice_store = (store if isinstance(store, SliceStore) else SliceStore(store)).require(split=split, modalities=list(modalities))
    dev = resolve_device(device, key="`device`")
    evaluated = load_runs(runs, slice_store, dev, checkpoint)
    for run in evaluated:
        for d in dirs:
            run.loaded.generator_for(DIRECTION_MODALITIES[d][0])  # one-line error if the run lacks this modality
    tcfg = tumour_config or TumourCheckConfig()

    dataset = PairedSliceDataset(slice_store, split, modalities)
    dataset.manifest = select_slices(dataset.manifest, slice_store.image_size, slices, tcfg.min_lesion_pixels)
    sample_pos = set(pick_slices(dataset.manifest, samples, seed))
    reader_pos = set(pick_slices(dataset.manifest, reader_study, seed + 1))
    keep_pos = sample_pos | reader_pos
    kept: dict[int, dict[str, Any]] = {}  # dataset position -> images for figures / reader study

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    acc = MetricAccumulator()
    tumour_rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []

    def check_tumour(pred_np, target_np, tgt, tags):
        for i, (rec, lesions) in enumerate(tumour_fidelity_batch(pred_np, target_np, batch["mask"].numpy(),
                                                                 batch["seg"].numpy(), tgt, tcfg)):
            key = {"subject": keys["subject"][i], "slice_index": keys["slice_index"][i], **tags}
            tumour_rows.append({**key, **rec})
            lesion_rows.extend({**key, **les} for les in lesions)

    position = 0
    with torch.inference_mode():
        for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
            b = batch["mask"].shape[0]
            brain = batch["mask"].to(dev)
            seg = batch["seg"].to(dev)
            regions = region_masks(brain, seg)
            unit = {m: ((batch[m].to(dev) + 1.0) * 0.5).clamp(0, 1) for m in modalities}
            keys = {"subject": list(batch["subject"]), "slice_index": batch["slice_index"].tolist()}
            positions = list(range(position, position + b))
            for p_i, pos in enumerate(positions):
                if pos in keep_pos:
                    kept[pos] = {"subject": keys["subject"][p_i], "slice_index": keys["slice_index"][p_i],
                                 "seg": batch["seg"][p_i, 0].numpy(), "real": {m: unit[m][p_i, 0].float().cpu().numpy() for m in modalities},
                                 "out": {}}
            for run in evaluated:
                for d in dirs:
                    src, tgt = DIRECTION_MODALITIES[d]
                    pred = translate_batch(run.loaded.generator_for(src), batch[src], dev, brain if zero_background else None, amp)
                    tags = {"run": run.label, "method": run.loaded.method, "group": run.group, "seed": run.seed,
                            "direction": d}
                    acc.update(pred, unit[tgt], regions, keys={**keys, **tags})
                    pred_np = pred.cpu().numpy()
                    check_tumour(pred_np, unit[tgt].cpu().numpy(), tgt, tags)
                    for p_i, pos in enumerate(positions):
                        if pos in kept:
                            kept[pos]["out"][(run.label, d)] = pred_np[p_i, 0]
            if reference:
                for d in dirs:
                    src, tgt = DIRECTION_MODALITIES[d]
                    as_output = unit[src] * brain if zero_background else unit[src]
                    tags = {"run": REFERENCE_RUN, "method": REFERENCE_METHOD, "group": REFERENCE_RUN, "seed": None,
                            "direction": d}
                    acc.update(as_output, unit[tgt], regions, keys={**keys, **tags})
                    check_tumour(as_output.cpu().numpy(), unit[tgt].cpu().numpy(), tgt, tags)
            position += b

    per_slice = acc.frame()
    per_slice = per_slice[["subject", "slice_index", "run", "method", "group", "seed", "direction", "region", "scale",
                           "MAE", "MSE", "PSNR", "SSIM"]]
    summary = summarise(per_slice.drop(columns=["group", "seed"]))
    tumour = pd.DataFrame(tumour_rows)
    lesions = pd.DataFrame(lesion_rows)
    tumour_summary = summarise_tumour(tumour, lesions)
    result = EvaluationResult(out_dir=None, per_slice=per_slice, summary=summary, table1=table1(summary, dirs),
                              tumour=tumour, tumour_summary=tumour_summary, tumour_lesions=lesions)
    if len(set(result.per_slice["group"])) > 1:
        from mri_harmonic.evaluation.compare import compare_runs

        # baseline: the first CycleGAN group (the paper's reference), else the first run's group
        result.baseline = next((r.group for r in evaluated if r.loaded.method == BASELINE), evaluated[0].group)
        # a group trained with other seeds than the baseline's is left out of the comparison (the report says so),
        # not allowed to cost the whole evaluation
        result.comparison = compare_runs(result.per_slice, result.baseline, group_column="group", unpaired="skip")
    result.context = EvaluationContext(runs=evaluated, store=slice_store, split=split, directions=dirs, device=dev, kept=kept,
                                       sample_positions=sorted(sample_pos), reader_positions=sorted(reader_pos),
                                       tumour_config=tcfg, zero_background=zero_background, seed=seed, amp=amp,
                                       slices=slices)
    return result


def _comparison_section(result: EvaluationResult) -> list[str]:
    """report.md lines: paired differences against the baseline run (empty with a single run)."""
    if result.comparison is None:
        return []
    from mri_harmonic.evaluation.compare import comparison_markdown

    unpaired = result.comparison.attrs.get("unpaired", {})
    if result.comparison.empty and not unpaired:
        return []
    lines = [f"## Paired comparison against {result.baseline} (whole slice, 0-255)", ""]
    if not result.comparison.empty:
        lines += [
            "The same slices translated by each method (runs that differ only in their seed pooled): mean of the "
            "per-slice differences, aggregated per test subject, with a 95 % interval over test subjects and training "
            "seeds (comparison.csv; mri_harmonic/evaluation/compare.py).",
            "",
            comparison_markdown(result.comparison, result.baseline),
            "",
        ]
    lines += [f"Not compared: {g} (seeds {', '.join(seeds)}) shares no training seed with {result.baseline}, so its "
              "runs cannot be paired with the baseline's; evaluate them with a run of the baseline trained with one "
              "of those seeds." for g, seeds in unpaired.items()]
    return lines + ([""] if unpaired else [])


def write_evaluation(result: EvaluationResult, out_dir: str | os.PathLike) -> EvaluationResult:
    """Write the tables, figures, reader study, ``evaluation.json`` and ``report.md`` of ``result``
    (:func:`compute_evaluation`) to ``out_dir``; returns ``result`` with ``out_dir`` and ``paths`` set."""
    from mri_harmonic import __version__
    from mri_harmonic.evaluation import figures
    from mri_harmonic.evaluation.tables import write_table1
    from mri_harmonic.utils.device import describe_device
    from mri_harmonic.utils.io import atomic_write_csv, atomic_write_json, atomic_write_text, ensure_writable_dir

    ctx = result.context
    evaluated, store, split, dirs, dev, kept = ctx.runs, ctx.store, ctx.split, ctx.directions, ctx.device, ctx.kept
    sample_pos, reader_pos, tcfg = ctx.sample_positions, ctx.reader_positions, ctx.tumour_config
    zero_background, seed, amp = ctx.zero_background, ctx.seed, ctx.amp
    shown = shown_runs(evaluated)
    out = result.out_dir = ensure_writable_dir(out_dir, "`out_dir` folder")
    paths = result.paths
    paths["per_slice"] = atomic_write_csv(out / "per_slice.csv", result.per_slice)
    paths["summary"] = atomic_write_csv(out / "summary.csv", result.summary)
    paths.update(write_table1(result.summary, out, dirs))
    paths["tumour_per_slice"] = atomic_write_csv(out / "tumour_per_slice.csv", result.tumour)
    paths["tumour_lesions"] = atomic_write_csv(out / "tumour_lesions.csv", result.tumour_lesions)
    paths["tumour_summary"] = atomic_write_csv(out / "tumour_summary.csv", result.tumour_summary)
    if result.comparison is not None:
        paths["comparison"] = atomic_write_csv(out / "comparison.csv", result.comparison)

    fig_dir = out / "figures"
    for d in dirs:
        src, tgt = DIRECTION_MODALITIES[d]
        rows = [
            figures.SampleRow(label=f"{kept[p]['subject']} z{kept[p]['slice_index']}", input_image=kept[p]["real"][src],
                              target=kept[p]["real"][tgt], seg=kept[p]["seg"],
                              outputs={r.label: kept[p]["out"][(r.label, d)] for r in shown})
            for p in sample_pos
        ]
        if rows:
            paths[f"samples_{d}"] = figures.sample_grid(rows, fig_dir / f"samples_{d}.png", title=f"{d} ({split} split)",
                                                        input_name=f"input {src}", target_name=f"real {tgt}")
    for region in ("slice", "brain"):
        paths[f"metrics_{region}"] = figures.metric_distributions(result.per_slice, fig_dir / f"metrics_{region}.png", region=region)
    curves = figures.loss_curves({r.label: r.path / "metrics.csv" for r in evaluated}, fig_dir / "loss_curves.png")
    if curves is not None:
        paths["loss_curves"] = curves

    if reader_pos:
        from mri_harmonic.evaluation.reader_study import ReaderCase, write_reader_study, write_realism_study

        d = dirs[0]
        src, tgt = DIRECTION_MODALITIES[d]
        cases = [
            ReaderCase(case_id=f"case{k + 1:03d}", subject=kept[p]["subject"], slice_index=int(kept[p]["slice_index"]),
                       direction=d, input_image=kept[p]["real"][src],
                       outputs={r.label: kept[p]["out"][(r.label, d)] for r in shown},
                       methods={r.label: r.loaded.method for r in shown}, target_image=kept[p]["real"][tgt])
            for k, p in enumerate(reader_pos)
        ]
        write = write_reader_study if len(shown) > 1 else write_realism_study  # one run: real or synthetic?
        for name, path in write(cases, out / "reader_study", seed=seed).items():
            paths[f"reader_study_{name}"] = Path(path)

    manifest = select_slices(store.split_manifest(split), store.image_size, ctx.slices, tcfg.min_lesion_pixels)
    inputs = {
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": describe_device(dev),
        "store": {"path": str(store.path), "config_hash": store.config_hash, "split": split, "slices": ctx.slices,
                  "n_slices": int(len(manifest)), "n_subjects": int(manifest["subject"].nunique()),
                  "image_size": list(store.image_size)},
        "directions": list(dirs),
        "zero_background": zero_background,
        "precision": "bf16 autocast" if (amp and dev.type == "cuda") else "fp32",
        "tumour_checks": {k: getattr(tcfg, k) for k in tcfg.__dataclass_fields__},
        "runs": [
            {"label": r.label, "path": str(r.path), "method": r.loaded.method, "group": r.group, "seed": r.seed,
             "trained_direction": r.loaded.direction,
             "step": r.loaded.step, "weights": r.loaded.weights, "checkpoint": str(r.loaded.checkpoint_path),
             "config_hash": r.config_hash,
             "training_store": r.loaded.store, "training_store_config_hash": r.loaded.store_config_hash,
             "same_preprocessing_as_training": r.loaded.store_config_hash == store.config_hash}
            for r in evaluated
        ],
    }
    paths["evaluation_json"] = atomic_write_json(out / "evaluation.json", inputs)
    paths["report"] = atomic_write_text(out / "report.md", report_markdown(result, inputs, paths))
    return result


_SLICE_WORDS = {"all": "", "healthy": "healthy (no tumour label) ", "tumour": "tumorous "}


def report_markdown(result: EvaluationResult, inputs: dict[str, Any], paths: dict[str, Path]) -> str:
    """``report.md``: inputs, conventions, Table 1 (with the paper's block), regional summary, tumour checks, figures."""
    from mri_harmonic.evaluation.tables import (
        DIRECTION_TITLES,
        markdown_table,
        paper_table1,
        table1_markdown,
        tumour_markdown,
    )

    out = result.out_dir
    rel = lambda p: Path(p).relative_to(out).as_posix()  # noqa: E731
    st = inputs["store"]
    lines = [
        "# Evaluation report",
        "",
        f"Written {inputs['created']} by mri-harmonic {inputs['package_version']} on {inputs['device']} ({inputs['precision']}).",
        "",
        "## Inputs",
        "",
        f"- Store: `{st['path']}` (preprocess config hash `{st['config_hash']}`), split **{st['split']}**: "
        f"{st['n_slices']} {_SLICE_WORDS[st.get('slices', 'all')]}slices of {st['n_subjects']} subjects, "
        f"{st['image_size'][0]}x{st['image_size'][1]} pixels.",
        f"- Directions: {', '.join(DIRECTION_TITLES[d] for d in inputs['directions'])}.",
        "",
        markdown_table(
            ["run", "method", "trained as", "step", "weights", "config hash", "checkpoint", "store preprocessing = training's"],
            [[r["label"], r["method"], r["trained_direction"], r["step"],
              "averaged (EMA)" if r.get("weights") == "ema" else "trained", f"`{r['config_hash']}`", f"`{r['checkpoint']}`",
              "yes" if r["same_preprocessing_as_training"] else f"**no** (trained on `{r['training_store']}`)"]
             for r in inputs["runs"]],
        ),
        "",
        "## Conventions",
        "",
        "- **Intensity scale.** The store holds each modality normalised within the brain to [0, 1] (percentile "
        "window, background 0). Networks work in [-1, 1]; outputs map back by (y + 1) / 2, clamped to [0, 1]. "
        "The paper's 0-255 scale is the store value x 255 (no rounding to 8 bit): MAE x 255, MSE x 255^2; PSNR and "
        "SSIM are the same on both scales (data_range 255 resp. 1). summary.csv and per_slice.csv give both scales "
        "(column `scale`).",
        f"- **Background.** {'Translations are set to 0 outside the brain mask, as `mri-harmonic translate` writes them.' if inputs['zero_background'] else 'Raw network outputs are scored, background included.'}",
        "- **Regions.** `slice`: every pixel (as the paper's Table 1); `brain`: the store's brain mask (non-zero "
        "voxels of all modalities); `tumour`: BraTS labels > 0 (whole tumour), scored only on slices that have one.",
        "- **Metrics.** MAE and MSE: means over the region's pixels. PSNR = 10 log10(data_range^2 / MSE) per slice; "
        "identical images give PSNR = inf, reported per slice but left out of means and stds (counted in "
        "summary.csv `n_inf`). SSIM: Wang et al. (IEEE TIP 2004), Gaussian window 11x11, sigma 1.5, K1 0.01, "
        "K2 0.03, population covariances, map evaluated where the window fits inside the slice (5-pixel border "
        "dropped), averaged over the region's pixels — for the whole slice identical to scikit-image "
        "`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` and MONAI "
        "`SSIMMetric`. Means and (population) stds are over slices.",
        *([f"- **Reference row `{REFERENCE_RUN}`** (method `{REFERENCE_METHOD}`): the input slice itself scored as "
           "the translation (same background rule). It is the floor: a run that does not beat it on a metric has not "
           "learned a better mapping than doing nothing, whatever it gains on another run."]
          if REFERENCE_RUN in set(result.per_slice["run"]) else []),
        "",
        "## Table 1 layout",
        "",
        table1_markdown(result.table1, paper_table1([d for d in inputs["directions"]])),
        "## All regions (0-255 scale; mean ± std over slices, n slices)",
        "",
    ]
    summ = result.summary[result.summary["scale"] == "0-255"]
    rows = []
    for (run, d, region), g in summ.groupby(["run", "direction", "region"], sort=False):
        g = g.set_index("metric")
        cells = [run, d, region, int(g["n"].max())]
        for m in ("MAE", "MSE", "PSNR", "SSIM"):
            dec = 3 if m == "SSIM" else 2
            mean, std = g.loc[m, "mean"], g.loc[m, "std"]
            cells.append("–" if pd.isna(mean) else f"{mean:.{dec}f} ± {std:.{dec}f}")
        rows.append(cells)
    lines += [markdown_table(["run", "direction", "region", "n", "MAE", "MSE", "PSNR", "SSIM"], rows), ""]
    tc = inputs["tumour_checks"]
    lines += [
        "## Tumour fidelity",
        "",
        "Signed, per lesion (a connected component of the labels, ≥ "
        f"{tc['min_lesion_pixels']} px) and per slice, against the real target's normal-appearing white matter (NAWM: "
        "the histogram mode of the normal-brain intensities in the band white matter occupies in the target "
        f"modality, ± {tc['nawm_halfwidth']}; mri_harmonic/evaluation/tumour.py). Lesion contrast C = mean in the "
        "lesion − median in NAWM, in the real target and in the translation. A lesion is **erased** when it is "
        f"conspicuous (|C_real| ≥ {tc['min_lesion_contrast']}) and the translation keeps less than "
        f"{100 * tc['kept_fraction']:.0f} % of its contrast; **wrong direction** when the translation shows it with "
        f"the opposite sign (|C| ≥ {tc['min_lesion_contrast']}; e.g. FLAIR-bright in a synthetic T1). An **invented** "
        "lesion (after Cohen, Luck & Honari, MICCAI 2018) is a connected region (≥ "
        f"{tc['invented_min_pixels']} px) outside the labels (dilated by {tc['label_margin']} px) that is at least "
        f"{tc['invented_contrast']} more lesion-like than NAWM (brighter in FLAIR, darker in T1) and at least "
        f"{tc['invented_excess']} more than the real target within {tc['tolerance_radius']} px. The thresholds were "
        "calibrated on controls (reports/fidelity_controls/: the real target ≤ 1 % of slices flagged, blurred or "
        "noisy ≤ 5 %, in-painted lesions erased ≥ 95 %, added lesions invented ≥ 95 %). Rates: erased over "
        "conspicuous lesions, wrong direction over all scored lesions, invented and flagged over scored slices. "
        "Per slice: tumour_per_slice.csv; per lesion: tumour_lesions.csv.",
        "",
        tumour_markdown(result.tumour_summary),
        *_comparison_section(result),
        "## Figures",
        "",
    ]
    hidden = ", ".join(r.label for r in result.context.runs if r not in shown_runs(result.context.runs))
    one_each = f" (one run per group, its lowest seed; not shown: {hidden})" if hidden else ""
    captions = {"samples": "Sample translations (rows: slices, tumour slices first; columns: input, each run"
                           f"{one_each}, real target, |error| per run on one colour scale; cyan: tumour labels)",
                "metrics": "Per-slice metric distributions", "loss_curves": "Training losses from each run's metrics.csv"}
    for key, path in paths.items():
        if Path(path).suffix == ".png":
            cap = next((c for k, c in captions.items() if key.startswith(k)), key)
            lines += [f"**{cap}** — `{rel(path)}`", "", f"![{key}]({rel(path)})", ""]
    if any(k.startswith("reader_study") for k in paths):
        lines += ["## Reader study", "",
                  "A blinded sheet is in `reader_study/` (open `sheet.html`; see its README.md). `key.csv` unblinds it: "
                  "keep it away from the readers. Score answers with `mri-harmonic reader-study score`."
                  + (f" Each case shows one run per group, its lowest seed (not shown: {hidden})." if hidden else ""), ""]
    lines += ["## Files", ""]
    lines += [f"- `{rel(p)}`" for k, p in paths.items() if Path(p).suffix != ".png"] + ["- `report.md`", ""]
    return "\n".join(lines)
