"""Learning curves on held-out slices: a run's kept checkpoints scored on a store split, step by step.

Each checkpoint is scored as :func:`~mri_harmonic.evaluation.evaluate.compute_evaluation` scores a run (the
translation with the run's averaged weights when it keeps them, zeroed outside the brain; the same metrics on the
0-255 scale), on the whole slice and the brain, without the tumour checks, figures or reader study. The untranslated
input is scored once as the floor (``run`` ``input-as-output``, ``step`` 0). A curve says whether a budget has
stopped paying: if a run's metric has been flat for the last checkpoints, more steps of the same schedule will not
move it past the floor.

>>> curves = checkpoint_curves({"harmonic-s0": "runs/harmonic-s0"}, "store", split="val")  # doctest: +SKIP
>>> curves.columns  # run, step, direction, region, MAE, MSE, PSNR, SSIM (means over slices)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from mri_harmonic.directions import DIRECTIONS

#: Regions a curve reports (the tumour region is too small per checkpoint to be worth the extra columns).
CURVE_REGIONS = ("slice", "brain")
#: ``run`` value of the untranslated input's rows (as in ``mri-harmonic evaluate``).
INPUT = "input-as-output"
COLUMNS = ["run", "step", "direction", "region", "MAE", "MSE", "PSNR", "SSIM"]


def checkpoint_curves(runs: Mapping[str, str | os.PathLike], store, split: str = "val", *, directions="both",
                      batch_size: int = 32, device: str = "cpu", amp: bool = True, done: pd.DataFrame | None = None,
                      on_run: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Score every periodic checkpoint of each run in ``runs`` (``{label: run folder}``) on ``split``.

    ``done``: rows already computed (e.g. a previous, interrupted call's CSV); a (run, step) pair found there is not
    scored again. ``on_run(frame)`` receives the rows so far after each run (to save them). Returns one row per run,
    checkpoint step, direction and region (means over the split's slices), the input floor first. ``amp``: as in
    :func:`~mri_harmonic.evaluation.translate.translate_batch` (bf16 on CUDA only).
    """
    import torch
    from torch.utils.data import DataLoader

    from mri_harmonic.checkpoint import load_run, periodic_checkpoints
    from mri_harmonic.data.datasets import PairedSliceDataset
    from mri_harmonic.data.store import SliceStore
    from mri_harmonic.evaluation.evaluate import parse_directions
    from mri_harmonic.evaluation.metrics import MetricAccumulator
    from mri_harmonic.evaluation.regions import region_masks
    from mri_harmonic.evaluation.translate import translate_batch
    from mri_harmonic.utils.device import resolve_device

    dirs = parse_directions(directions)
    modalities = tuple(dict.fromkeys(m for d in dirs for m in DIRECTIONS[d]))
    slice_store = (store if isinstance(store, SliceStore) else SliceStore(store)).require(split=split, modalities=list(modalities))
    dev = resolve_device(device, key="`device`")
    batches = list(DataLoader(PairedSliceDataset(slice_store, split, modalities), batch_size=batch_size, shuffle=False))
    frames = [done[COLUMNS]] if done is not None and len(done) else []
    have = set() if not frames else set(zip(frames[0]["run"], frames[0]["step"].astype(int)))

    def score(translate: Callable[[str, dict], torch.Tensor], run: str, step: int) -> pd.DataFrame:
        acc = MetricAccumulator(scales={"0-255": 255.0})
        with torch.inference_mode():
            for batch in batches:
                brain = batch["mask"].to(dev)
                regions = {k: v for k, v in region_masks(brain, batch["seg"].to(dev)).items() if k in CURVE_REGIONS}
                for d in dirs:
                    src, tgt = DIRECTIONS[d]
                    target = ((batch[tgt].to(dev) + 1.0) * 0.5).clamp(0, 1)
                    acc.update(translate(src, batch), target, regions, keys={"direction": d})
        means = acc.frame().groupby(["direction", "region"], sort=False)[["MAE", "MSE", "PSNR", "SSIM"]].mean().reset_index()
        return means.assign(run=run, step=step)[COLUMNS]

    def updated() -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)

    if (INPUT, 0) not in have:
        frames.insert(0, score(lambda src, b: ((b[src].to(dev) + 1.0) * 0.5).clamp(0, 1) * b["mask"].to(dev), INPUT, 0))
    for label, run_dir in runs.items():
        todo = [p for p in periodic_checkpoints(run_dir) if (label, int(p.stem.split("_")[1])) not in have]
        for path in todo:
            loaded = load_run(Path(run_dir), dev, checkpoint=str(path))
            frames.append(score(lambda src, b, run=loaded: translate_batch(run.generator_for(src), b[src], dev, b["mask"].to(dev), amp),
                                label, loaded.step))
        if todo and on_run is not None:
            on_run(updated())
    return updated()
