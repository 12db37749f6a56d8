"""Evaluation stage: image metrics, segmentation-based checks and blinded reader studies.

- :mod:`.metrics` — MAE, MSE, PSNR, SSIM (whole slice or inside a region), batched in torch, plus an accumulator;
- :mod:`.regions` — the evaluation regions (whole slice, brain mask, tumour);
- :mod:`.tumour` — tumour fidelity: per lesion kept, erased or wrong-direction against NAWM; invented lesions;
- :mod:`.fidelity_controls` — the controls (blurred, noisy, in-painted, added lesions) that calibrate it;
- :mod:`.curves` — learning curves: every kept checkpoint scored on held-out slices, beside the untranslated input;
- :mod:`.compare` — paired method differences with intervals over test subjects and training seeds;
- :mod:`.tables` — summary tables and the paper's Table 1 layout, with the paper's figures in a separate block;
- :mod:`.figures` — sample grids, metric distributions, training loss curves;
- :mod:`.evaluate` — ``mri-harmonic evaluate`` (orchestration and ``report.md``);
- :mod:`.translate` — ``mri-harmonic translate`` (whole NIfTI volumes or folders of subjects);
- :mod:`.reader_study` — blinded reader-study sheets and their scoring (the paper's Tables 3-4).
"""
