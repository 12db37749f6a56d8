"""Random gliomas: necrotic core (label 1), enhancing rim (label 4) and oedema (label 2) with irregular borders.

Each tumour is an ellipsoid of random size, elongation and orientation whose normalised distance is scaled by
``1 + r tanh(smooth noise)`` (a tensor-product spline field), so the borders are lobulated but bounded. The core
(necrosis + enhancing rim) replaces all tissue, oedema replaces only parenchyma (grey/white matter) and is kept
out of CSF. Class fractions fall off over one voxel (partial volume); labels are the fractions thresholded at
0.5, so the label map and the signal agree. Labels follow BraTS 2018-2021 (1 necrotic/non-enhancing core,
2 oedema, 4 enhancing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mri_harmonic.data.phantom.anatomy import smooth_field
from mri_harmonic.data.phantom.tissue import GD_CONCENTRATION_MM

#: Ranges of the drawn tumour parameters (mm or ratios to the enhancing radius); chosen to span small to large
#: BraTS-like lesions (whole tumour a few cm across), not fitted to data.
ENHANCING_RADIUS_MM = (8.0, 22.0)
NECROSIS_RATIO = (0.3, 0.75)
OEDEMA_RATIO = (1.4, 2.6)
P_NO_NECROSIS = 0.15
P_TWO_TUMOURS = 0.3


@dataclass
class Lesion:
    """Fractions of the lesion classes in a box ``where`` (slices of the full grid) and its Gd concentration."""

    where: tuple[slice, slice, slice]
    oedema: np.ndarray
    enhancing: np.ndarray
    necrosis: np.ndarray
    gd_mm: np.ndarray


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _pick_centre(rng: np.random.Generator, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """A voxel deep in white matter (85 %) or anywhere in parenchyma; falls back to the most white voxel."""
    pool = np.flatnonzero(wm.ravel() > 0.8) if rng.random() < 0.85 else np.flatnonzero((gm + wm).ravel() > 0.8)
    if pool.size == 0:
        pool = np.array([int(np.argmax(wm))])
    return np.array(np.unravel_index(int(rng.choice(pool)), wm.shape))


def add_tumours(
    rng: np.random.Generator, fractions: dict[str, np.ndarray], seg: np.ndarray, spacing_mm: float
) -> tuple[list[Lesion], list[dict]]:
    """Draw 1-2 tumours, update ``fractions`` (gm/wm/csf, in place) and ``seg`` (in place); return lesion boxes."""
    gm, wm, csf, mask = fractions["gm"], fractions["wm"], fractions["csf"], fractions["mask"]
    n = 2 if rng.random() < P_TWO_TUMOURS else 1
    lesions, params = [], []
    for _ in range(n):
        centre = _pick_centre(rng, gm, wm)
        radius = float(rng.uniform(*ENHANCING_RADIUS_MM))
        axes = rng.uniform(0.75, 1.25, size=3)
        rot = _random_rotation(rng)
        nec_ratio = 0.0 if rng.random() < P_NO_NECROSIS else float(rng.uniform(*NECROSIS_RATIO))
        ed_ratio = float(rng.uniform(*OEDEMA_RATIO))
        rough_core, rough_ed = float(rng.uniform(0.08, 0.2)), float(rng.uniform(0.12, 0.3))
        gd0 = float(rng.uniform(*GD_CONCENTRATION_MM))

        # borders: distance scaled by 1 + roughness * tanh(smooth noise), a factor in (1 - r, 1 + r), so the
        # lesion never reaches beyond radius * ratio / (1 - r) and the box below always holds it
        reach = radius * axes.max() * ed_ratio / (1 - rough_ed) + 2 * spacing_mm
        half = int(np.ceil(reach / spacing_mm))
        lo = np.maximum(centre - half, 0)
        hi = np.minimum(centre + half + 1, seg.shape)
        where = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        box = tuple(int(b - a) for a, b in zip(lo, hi))
        grids = np.meshgrid(*[(np.arange(a, b) - c) * spacing_mm for a, b, c in zip(lo, hi, centre)], indexing="ij")
        v = np.stack(grids, axis=-1).astype(np.float32) @ rot.astype(np.float32)  # coordinates in tumour frame
        d = np.sqrt(((v / (radius * axes.astype(np.float32))) ** 2).sum(-1))  # 1 at the enhancing border
        ctrl = max(3, min(8, int(round(2 * reach / 12.0))))
        d_core = d * (1 + rough_core * np.tanh(smooth_field(rng, box, control=ctrl)))
        d_ed = d * (1 + rough_ed * np.tanh(smooth_field(rng, box, control=ctrl)))
        gd_tex = 1 + 0.3 * smooth_field(rng, box, control=ctrl)
        edge = radius / spacing_mm  # one voxel in normalised-distance units is 1/edge

        m = mask[where].astype(np.float32)
        g, w, c = gm[where], wm[where], csf[where]
        w_core = np.clip(0.5 + (1.0 - d_core) * edge, 0, 1) * m
        w_nec = np.clip(0.5 + (nec_ratio - d_core) * edge, 0, 1) if nec_ratio > 0 else np.zeros_like(d)
        paren = g + w
        w_ed = np.clip(0.5 + (ed_ratio - d_ed) * edge, 0, 1) * np.clip((paren - 0.3) / 0.4, 0, 1) * m

        keep = 1.0 - w_core
        oedema = keep * w_ed * paren
        gm[where] = g * keep * (1 - w_ed)
        wm[where] = w * keep * (1 - w_ed)
        csf[where] = c * keep
        for prev in lesions:  # an earlier lesion overlapping this box loses its share to the new core
            if all(a.start < b.stop and b.start < a.stop for a, b in zip(prev.where, where)):
                inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(prev.where, where))
                pi = tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(inter, prev.where))
                ni = tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(inter, where))
                for arr in (prev.oedema, prev.enhancing, prev.necrosis):
                    arr[pi] *= keep[ni]
        lesions.append(Lesion(
            where=where,
            oedema=oedema.astype(np.float32),
            enhancing=(w_core * (1 - w_nec)).astype(np.float32),
            necrosis=(w_core * w_nec).astype(np.float32),
            gd_mm=(gd0 * np.clip(gd_tex, 0.2, None)).astype(np.float32),
        ))
        s = seg[where]
        s[(w_ed >= 0.5) & (s == 0)] = 2
        core = w_core >= 0.5
        s[core] = 4
        s[core & (w_nec >= 0.5)] = 1
        params.append({
            "centre_voxel": [int(x) for x in centre], "enhancing_radius_mm": radius,
            "axis_factors": [float(a) for a in axes], "necrosis_ratio": nec_ratio, "oedema_ratio": ed_ratio,
            "border_roughness": [rough_core, rough_ed], "gd_concentration_mm": gd0,
        })
    return lesions, params
