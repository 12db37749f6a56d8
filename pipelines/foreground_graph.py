"""Measure the foreground patch graph of the smoothness term (``loss.smoothness.min_brain_fraction``) against today's
full graph -> reports/foreground_graph/.

No training. On paired phantom slices (the loader of ``pipelines/smoothness_defaults.py`` at 2 mm, cropped to the
phantom store's 96 px, so a 6x6 grid of 16 px patches; 8 bins, sigma 0.7: the training setting) and for each
brain-fraction threshold (0 = today's full graph):

1. **Where the gradient goes.** Freshly initialised generators of the CPU preset (ngf 16, 4 blocks; seeded) give
   ``G(x)`` and ``F(G(x))``; the share of the term's L1 gradient (w.r.t. both) that lands on brain pixels, and on
   all-background patches; and the correlation of the per-slice term with the slice's brain fraction.
2. **Agreement on the pairs the term trains on.** The graph measurement behind today's defaults
   (``smoothness_defaults.graph_metrics``: F1 of the soft graph built from the source modality as a detector of
   target-alike pairs) redone over the pairs each variant actually sums over — every pair of patches for the full
   graph (the defaults were tuned on brain-touching pairs only), pairs of kept patches for the foreground graph.
3. **Cost per step**, as a ratio measured side by side in one run: a full ``train_step`` of the CPU preset
   (harmonic, batch 1) with each variant, alternating rounds; and the smoothness term's forward + backward alone.
   The ratio is printed with the machine's load: on a shared machine only the ratio means anything.

Usage: ``python pipelines/foreground_graph.py [--subjects 4] [--per-subject 8] [--rounds 12]`` (a few minutes on one
core). Writes ``results.json`` and ``README.md`` (with ``notes.md``, the hand-written reading, appended).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from smoothness_defaults import DIRECTIONS, SIGMAS, graph_metrics, load_slices  # noqa: E402

from mri_harmonic.evaluation.tables import markdown_table  # noqa: E402
from mri_harmonic.models.config import SmoothnessConfig  # noqa: E402
from mri_harmonic.models.features import HistogramPatchFeatures, extract_patches  # noqa: E402
from mri_harmonic.models.losses import SmoothnessLoss, pairwise_l1  # noqa: E402
from mri_harmonic.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.0, 0.01, 0.25, 0.5)
PATCH, BINS, SIGMA = 16, 8, 0.7


def gradient_shares(data, thresholds) -> list[dict]:
    from mri_harmonic.models.networks import build_generator
    from mri_harmonic.training.config import load_train_config

    model = load_train_config(ROOT / "configs" / "phantom-cpu.yaml").model
    torch.manual_seed(0)
    nets = {"G_AB": build_generator(model), "G_BA": build_generator(model)}
    rows = []
    for direction, (src, _) in DIRECTIONS.items():
        g, f = (nets["G_AB"], nets["G_BA"]) if src == "flair" else (nets["G_BA"], nets["G_AB"])
        x = data[src]
        brain = data["mask"].bool()
        with torch.no_grad():
            gx0 = g(x)
            fgx0 = f(gx0)
        frac = brain.float().mean(dim=(1, 2, 3)).numpy()
        for t in thresholds:
            loss = SmoothnessLoss(SmoothnessConfig(patch_size=PATCH, bins=BINS, sigma=SIGMA, min_brain_fraction=t))
            gx, fgx = gx0.clone().requires_grad_(True), fgx0.clone().requires_grad_(True)
            per_slice = []
            for n in range(x.shape[0]):  # per-slice values (the term is a batch mean)
                with torch.no_grad():
                    per_slice.append(float(loss(x[n:n + 1], gx0[n:n + 1], fgx0[n:n + 1])))
            grads = torch.autograd.grad(loss(x, gx, fgx), (gx, fgx))
            mag = grads[0].abs() + grads[1].abs()
            empty = extract_patches(brain.float(), PATCH).amax(-1) == 0  # (N, P) all-background patches
            empty_px = empty[:, :, None].expand(-1, -1, PATCH * PATCH)
            mag_p = extract_patches(mag, PATCH)
            rows.append({
                "direction": direction, "min_brain_fraction": t,
                "grad_share_brain_pixels": float(mag[brain].sum() / mag.sum()),
                "grad_share_background_patches": float(mag_p[empty_px].sum() / mag_p.sum()),
                "patches_kept": float(loss.patch_keep(x).float().mean()) if t > 0 else 1.0,
                "corr_loss_brain_fraction": float(np.corrcoef(per_slice, frac)[0, 1]),
            })
    return rows


def agreement(data, thresholds) -> pd.DataFrame:
    feat = HistogramPatchFeatures(PATCH, BINS)
    share = extract_patches(data["mask"].float(), PATCH).mean(-1)  # (N, P) brain share per patch
    rows = []
    for direction, (src, tgt) in DIRECTIONS.items():
        with torch.no_grad():
            fs, ft = feat(data[src]), feat(data[tgt])
        for label, t in [("brain-touching pairs (how the defaults were tuned)", None)] + [(f"pairs the term trains on, t={t}", t) for t in thresholds]:
            per = []
            for n in range(fs.shape[0]):
                keep = share[n] > 0 if t is None else (share[n] >= t if t > 0 else torch.ones_like(share[n], dtype=torch.bool))
                if keep.sum() < 4:
                    continue
                ds, dt = pairwise_l1(fs[n][keep][None])[0], pairwise_l1(ft[n][keep][None])[0]
                iu = torch.triu_indices(ds.shape[0], ds.shape[0], offset=1)
                per.append(pd.DataFrame(graph_metrics(ds[iu[0], iu[1]].numpy(), dt[iu[0], iu[1]].numpy(), SIGMAS)))
            agg = pd.concat(per).groupby("sigma", as_index=False).mean()
            agg["f1"] = 2 * agg.precision * agg.recall / (agg.precision + agg.recall)
            agg.insert(0, "pairs", label)
            agg.insert(0, "direction", direction)
            rows.append(agg)
    return pd.concat(rows, ignore_index=True)


def cost_ratio(data, threshold: float, rounds: int) -> dict:
    from mri_harmonic.training.config import load_train_config
    from mri_harmonic.training.trainer import build_state, train_step
    from mri_harmonic.utils.device import seed_everything

    states, terms = {}, {}
    for name, t in (("full", 0.0), ("foreground", threshold)):
        cfg = load_train_config(ROOT / "configs" / "phantom-cpu.yaml",
                                overrides=[f"loss.smoothness.min_brain_fraction={t}", "loss.smoothness.patch_size=16", "device=cpu"])
        seed_everything(0)
        states[name] = build_state(cfg, torch.device("cpu"))
        terms[name] = SmoothnessLoss(cfg.loss.smoothness)
    a, b = data["flair"][:1], data["t1"][1:2]
    gx = torch.rand_like(a).mul(2).sub(1)
    times = {k: {"step": [], "term": []} for k in states}
    for r in range(rounds + 1):  # round 0 warms up
        for name in (("full", "foreground") if r % 2 else ("foreground", "full")):
            t0 = time.perf_counter()
            train_step(states[name], a, b)
            t1 = time.perf_counter()
            g = gx.clone().requires_grad_(True)
            terms[name](a, g, g).backward()
            t2 = time.perf_counter()
            if r:
                times[name]["step"].append(t1 - t0)
                times[name]["term"].append(t2 - t1)
    med = {k: {m: float(np.median(v)) for m, v in d.items()} for k, d in times.items()}
    return {"threshold": threshold, "rounds": rounds, "median_s": med,
            "ratio_step": med["foreground"]["step"] / med["full"]["step"],
            "ratio_term": med["foreground"]["term"] / med["full"]["term"],
            "load_average": os.getloadavg(), "cpus": os.cpu_count()}


def readme(shares, agree, cost, args, seconds) -> str:
    sh = pd.DataFrame(shares)
    share_rows = [[r.direction, r.min_brain_fraction, f"{100 * r.patches_kept:.0f} %", f"{100 * r.grad_share_brain_pixels:.1f} %",
                   f"{100 * r.grad_share_background_patches:.1f} %", f"{r.corr_loss_brain_fraction:.2f}"] for r in sh.itertuples()]
    best = agree.loc[agree.groupby(["direction", "pairs"], sort=False).f1.idxmax()]
    at = agree[np.isclose(agree.sigma, SIGMA)].set_index(["direction", "pairs"])
    agree_rows = [[r.direction, r.pairs, f"{r.sigma:g}", f"{r.f1:.3f}", f"{at.loc[(r.direction, r.pairs), 'f1']:.3f}",
                   f"{at.loc[(r.direction, r.pairs), 'precision']:.3f}", f"{at.loc[(r.direction, r.pairs), 'recall']:.3f}"]
                  for r in best.itertuples()]
    load = ", ".join(f"{v:.1f}" for v in cost["load_average"])
    return f"""# Foreground patch graph of the smoothness term

Written by `python pipelines/foreground_graph.py --subjects {args.subjects} --per-subject {args.per_subject} --rounds
{args.rounds}` in {seconds:.0f} s: {args.subjects * args.per_subject} paired phantom slices (2 mm, centre 96 px as in the store), patch
{PATCH}, {BINS} bins, σ {SIGMA} (today's defaults). `loss.smoothness.min_brain_fraction` = t drops the patches of x
with a brain share below t from the graph; each mean then runs over the pairs of kept patches (t = 0: today's term,
every patch, divided by P²). The default stays 0: the benchmark trains both variants before one is chosen.

## 1. Where the term's gradient goes (fresh CPU-preset generators)

Share of the L1 gradient w.r.t. G(x) and F(G(x)) on brain pixels and on all-background patches, and the correlation
of the per-slice term with the slice's brain fraction:

{markdown_table(["direction", "t", "patches kept", "gradient on brain pixels", "gradient on all-background patches", "corr(term, brain fraction)"], share_rows)}

Evaluation zeroes the background, so gradient spent there buys nothing.

## 2. Agreement of the graph with the target, on the pairs the term sums over

The measurement behind today's defaults (`pipelines/smoothness_defaults.py`: F1 of the source-built soft graph as a
detector of target-alike patch pairs) over brain-touching pairs — how the defaults were tuned — and over the pairs
each variant actually trains on:

{markdown_table(["direction", "pairs", "best σ", "best F1", f"F1 at σ {SIGMA}", f"precision at σ {SIGMA}", f"recall at σ {SIGMA}"], agree_rows)}

With t = 0 the background–background pairs (identical empty histograms: weight 1, target distance 0) count as
"alike" pairs the graph gets right, so F1 over all pairs describes the empty background as much as the anatomy.

## 3. Cost per step (ratio, measured side by side)

{cost['rounds']} alternating rounds, median of each: a full `train_step` of configs/phantom-cpu.yaml (harmonic, batch
1, 96 px) with t = {cost['threshold']} over t = 0: **{cost['ratio_step']:.3f}**; the smoothness term's forward +
backward alone: **{cost['ratio_term']:.3f}**. Measured on a shared machine ({cost['cpus']} CPUs, load average
{load} while it ran), so only the ratio is meaningful, and even it is noisy; absolute times are in results.json
and are not figures.
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--per-subject", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threshold", type=float, default=0.25, help="foreground threshold of the cost measurement")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "foreground_graph")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = load_slices(args.subjects, (128, 128, 80), args.per_subject)
    data = {k: v[..., 16:112, 16:112].contiguous() for k, v in data.items()}  # the store's 96 px crop (6x6 patches)
    shares = gradient_shares(data, THRESHOLDS)
    agree = agreement(data, THRESHOLDS)
    cost = cost_ratio(data, args.threshold, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", {"gradient": shares, "agreement": agree.to_dict("records"), "cost": cost})
    notes = args.out / "notes.md"  # the hand-written reading, kept across reruns
    text = readme(shares, agree, cost, args, time.perf_counter() - t0)
    atomic_write_text(args.out / "README.md", text + ("\n" + notes.read_text() if notes.is_file() else ""))
    print((args.out / "README.md").read_text())


if __name__ == "__main__":
    main()
