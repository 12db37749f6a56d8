"""DiscoGAN (Kim, Cha, Kim, Lee, Kim, ICML 2017, "Learning to Discover Cross-Domain Relations with Generative
Adversarial Networks"), after the authors' code (SKTBrain/DiscoGAN, ``discogan/model.py`` and
``discogan/image_translation.py``).

Networks: ``G_AB``, ``G_BA`` (:class:`EncoderDecoder`), ``D_A``, ``D_B`` (:class:`FeatureDiscriminator`). With
``n_layers`` = L (4 in the original) and ``w_i = min(2**i, 8) * model.ngf``:

- generator: L stride-2 4x4 convs ``in -> w_0 -> ... -> w_{L-1}`` (LeakyReLU 0.2; batch norm from the second on),
  then L stride-2 4x4 transposed convs back ``w_{L-1} -> ... -> w_0 -> out`` (batch norm + ReLU, the last one
  followed by tanh); no skip connections, no biases;
- discriminator: the same encoder (widths from ``model.ndf``) and a 4x4 valid conv to one logit map; the
  activations after the 2nd..L-th convs are its *features* for the feature-matching loss.

Generator objective (one step, the original's ``gen_loss``), with ``r`` the reconstruction rate::

    total = (1 - r) [gan_weight (gan_ab + gan_ba) + fm_weight (fm_ab + fm_ba)] + r (rec_a + rec_b)
    gan_ab = BCE(D_B(G_AB(a)), 1)                  non-saturating GAN loss
    fm_ab  = sum_l mean_chw (mean_n f_l(b) - mean_n f_l(G_AB(a)))**2    f_l: D_B's features
    rec_a  = mean (G_BA(G_AB(a)) - a)**2           (MSE; ``reconstruction: l1`` for mean |.|)
    r      = rate_start while step < curriculum_steps, then rate

(the original's ``HingeEmbeddingLoss(l2, 1)`` of the squared batch-mean difference is its mean). Each
discriminator minimises ``0.5 BCE(D(real), 1) + 0.5 BCE(D(fake), 0)``; ``total = d_a + d_b``.

Deviations from the original, each for a reason:

- 1-channel MRI in [-1, 1] (``model.in_channels`` / ``out_channels``): tanh output instead of sigmoid (images in
  [0, 1] there).
- Any image size whose sides are divisible by ``2**n_layers`` with at least 4 pixels left (the original resizes
  everything to 64x64, where the discriminator gives one logit per image); on larger slices the final 4x4 conv
  gives a map of logits (e.g. 3x3 on 96x96, 13x13 on 256x256) and the GAN terms average over it.
- The discriminator returns logits and the GAN loss is BCE on logits (the same value as the original's sigmoid +
  ``BCELoss``, but numerically stable and allowed under autocast).
- Depth and normalisation are options (defaults: the original's 4 layers and batch norm); widths above ``8 *
  ngf`` are capped (the original's 4 layers never exceed it).
- Schedule: the trainer updates the generators and then the discriminators on every batch (as for every
  method), where the original spends one batch in three on a discriminator update and two on generator
  updates. ``curriculum_steps`` counts this trainer's steps (one generator and one discriminator update each);
  the original's 10,000 iterations are 6,667 generator and 3,333 discriminator updates.
- No image pool in the original: the presets set ``pool_size: 0`` (the trainer's pool then passes fakes through).
- Translation runs the generators in eval mode, so batch norm uses its running statistics (gathered over the
  generator's training inputs, real and generated); the original draws its test images in train mode, with the
  statistics of the test batch.

Initialisation is PyTorch's default, as in the original (``model.init_type`` is not used). Of ``model.*`` only
``in_channels``, ``out_channels``, ``ngf`` and ``ndf`` apply; of ``loss.*`` only ``method`` and ``options``
(:class:`DiscoGANOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mri_harmonic.config import require
from mri_harmonic.methods.base import Method
from mri_harmonic.models.losses import GANLoss, _f32, _no_autocast
from mri_harmonic.models.networks import norm_layer


@dataclass
class DiscoGANOptions:
    """``loss.options`` of ``discogan``; defaults are the original's (``image_translation.py`` arguments)."""

    gan_weight: float = 0.1
    """Weight of each BCE GAN term inside the adversarial part (original: 0.1)."""
    fm_weight: float = 0.9
    """Weight of each feature-matching term inside the adversarial part (original: 0.9)."""
    rate_start: float = 0.01
    """Reconstruction rate ``r`` during the first ``curriculum_steps`` steps (original ``--starting_rate``)."""
    rate: float = 0.5
    """Reconstruction rate ``r`` afterwards (original ``--default_rate``)."""
    curriculum_steps: int = 10000
    """Steps trained at ``rate_start`` (original ``--gan_curriculum``; 0 = ``rate`` from the start)."""
    reconstruction: Literal["mse", "l1"] = "mse"
    """Reconstruction loss: mean squared error (original) or mean absolute error."""
    n_layers: int = 4
    """Stride-2 convolutions of the generator's encoder (and transposed convs of its decoder) and of the
    discriminator (original: 4); image sides must be divisible by ``2**n_layers`` and at least ``4 * 2**n_layers``."""
    norm: Literal["batch", "instance", "none"] = "batch"
    """Normalisation after every conv but the first and the last (original: batch)."""

    def __post_init__(self) -> None:
        p = "loss.options."
        for name in ("gan_weight", "fm_weight", "curriculum_steps"):
            require(getattr(self, name) >= 0, p + name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("rate_start", "rate"):
            require(0 <= getattr(self, name) <= 1, p + name, f"must be in [0, 1], got {getattr(self, name)}")
        require(self.reconstruction in ("mse", "l1"), p + "reconstruction",
                f"must be 'mse' or 'l1', got {self.reconstruction!r}")
        require(1 <= self.n_layers <= 7, p + "n_layers", f"must be in 1..7 (original 4), got {self.n_layers}")
        require(self.norm in ("batch", "instance", "none"), p + "norm",
                f"must be 'batch', 'instance' or 'none', got {self.norm!r}")


def _widths(base: int, n_layers: int) -> list[int]:
    return [min(2**i, 8) * base for i in range(n_layers)]


def _encoder(in_channels: int, base: int, n_layers: int, norm: str) -> list[nn.Sequential]:
    """The stride-2 4x4 conv blocks shared by both networks: conv + LeakyReLU(0.2), norm from the second on."""
    w = _widths(base, n_layers)
    blocks = [nn.Sequential(nn.Conv2d(in_channels, w[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True))]
    for i in range(1, n_layers):  # batch norm's shift makes a conv bias redundant (original: no biases at all)
        blocks.append(nn.Sequential(nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=norm != "batch"), norm_layer(norm, w[i]),
                                    nn.LeakyReLU(0.2, inplace=True)))
    return blocks


class EncoderDecoder(nn.Module):
    """DiscoGAN's generator (original ``Generator(extra_layers=False)``): conv encoder, transposed-conv decoder."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_layers: int = 4, norm: str = "batch"):
        super().__init__()
        w = _widths(ngf, n_layers)
        layers: list[nn.Module] = list(_encoder(in_channels, ngf, n_layers, norm))
        for i in range(n_layers - 1, 0, -1):
            layers += [nn.ConvTranspose2d(w[i], w[i - 1], 4, 2, 1, bias=norm != "batch"), norm_layer(norm, w[i - 1]),
                       nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w[0], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class FeatureDiscriminator(nn.Module):
    """DiscoGAN's discriminator: ``x -> (logits, [features after the 2nd, ..., L-th conv block])``."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, norm: str = "batch"):
        super().__init__()
        self.blocks = nn.ModuleList(_encoder(in_channels, ndf, n_layers, norm))
        self.head = nn.Conv2d(_widths(ndf, n_layers)[-1], 1, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i > 0:
                feats.append(x)
        return self.head(x), feats


def feature_matching_loss(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """``sum_l mean((mean_n real_l - mean_n fake_l)**2)`` in float32 (original ``get_fm_loss``)."""
    with _no_autocast(real_feats[0]):
        return sum(((_f32(r).mean(0) - _f32(f).mean(0)) ** 2).mean() for r, f in zip(real_feats, fake_feats))


class DiscoGAN(Method):
    name = "discogan"
    summary = "DiscoGAN (Kim et al., ICML 2017): encoder-decoder generators, GAN + feature matching + reconstruction"
    Options = DiscoGANOptions
    generator_keys = ("G_AB", "G_BA")
    discriminator_keys = ("D_A", "D_B")

    def build_networks(self, discriminators: bool = True) -> dict[str, nn.Module]:
        m, o = self.model_cfg, self.options
        nets: dict[str, nn.Module] = {
            "G_AB": EncoderDecoder(m.in_channels, m.out_channels, m.ngf, o.n_layers, o.norm),
            "G_BA": EncoderDecoder(m.out_channels, m.in_channels, m.ngf, o.n_layers, o.norm),
        }
        if discriminators:
            nets["D_A"] = FeatureDiscriminator(m.in_channels, m.ndf, o.n_layers, o.norm)
            nets["D_B"] = FeatureDiscriminator(m.out_channels, m.ndf, o.n_layers, o.norm)
        return nets

    def translator(self, source: str) -> nn.Module:
        return self.nets[{"A": "G_AB", "B": "G_BA"}[source]]

    def image_size_problem(self, height: int, width: int) -> str | None:
        k = 2 ** self.options.n_layers
        if height % k or width % k or min(height, width) < 4 * k:
            return (f"not divisible by 2**loss.options.n_layers = {k} with at least {4 * k} pixels a side (the "
                    "discriminator's last 4x4 conv); rebuild the store with another size or lower "
                    "loss.options.n_layers")
        return None

    def reconstruction_rate(self, step: int) -> float:
        """``r`` of the objective at (0-based) ``step``: the original's curriculum."""
        o = self.options
        return o.rate_start if step < o.curriculum_steps else o.rate

    def prepare_training(self, device: torch.device, data_statistics: Mapping[str, Any] | None = None) -> None:
        super().prepare_training(device, data_statistics)
        self.gan = GANLoss("vanilla").to(device)

    def _reconstruction(self, rec: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with _no_autocast(rec):
            fn = F.mse_loss if self.options.reconstruction == "mse" else F.l1_loss
            return fn(_f32(rec), _f32(real))

    def generator_objective(self, real_a, real_b):
        o = self.options
        g_ab, g_ba = self.net("G_AB"), self.net("G_BA")
        d_a, d_b = self.frozen("D_A"), self.frozen("D_B")
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        logit_fb, feats_fb = d_b(fake_b)
        logit_fa, feats_fa = d_a(fake_a)
        with torch.no_grad():  # real features do not depend on the generators (D is frozen here)
            feats_b, feats_a = d_b(real_b)[1], d_a(real_a)[1]
        out = {
            "gan_ab": self.gan(logit_fb, True), "gan_ba": self.gan(logit_fa, True),
            "fm_ab": feature_matching_loss(feats_b, feats_fb), "fm_ba": feature_matching_loss(feats_a, feats_fa),
            "rec_a": self._reconstruction(rec_a, real_a), "rec_b": self._reconstruction(rec_b, real_b),
        }
        r = self.reconstruction_rate(self.step)
        adversarial = o.gan_weight * (out["gan_ab"] + out["gan_ba"]) + o.fm_weight * (out["fm_ab"] + out["fm_ba"])
        out["total"] = (1 - r) * adversarial + r * (out["rec_a"] + out["rec_b"])
        return out, {"A": fake_a, "B": fake_b}

    def discriminator_objective(self, real_a, real_b, fake_a, fake_b):
        losses = {}
        for key, net, real, fake in (("d_a", "D_A", real_a, fake_a), ("d_b", "D_B", real_b, fake_b)):
            d = self.net(net)
            losses[key] = 0.5 * (self.gan(d(real)[0], True) + self.gan(d(fake.detach())[0], False))
        losses["total"] = losses["d_a"] + losses["d_b"]
        return losses
