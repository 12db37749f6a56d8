"""UNIT (Liu, Breuel, Kautz, "Unsupervised Image-to-Image Translation Networks", NeurIPS 2017; mingyuliutw/UNIT).

UNIT assumes a *shared latent space*: an image of either domain and its translation have the same code ``z``.
Each domain has a VAE (encoder ``E_A``/``E_B``, decoder ``G_A``/``G_B``); the encoders share their last layers and
the decoders their first layers, so codes of both domains live in one space. Translation A -> B is
``G_B(E_A(x))``; at inference the latent mean is used, as in the original.

Which original. The objective, the latent model and the discriminators follow the later PyTorch release
(05-2018, MUNIT code structure: ``trainer.py::UNIT_Trainer``, ``networks.py::VAEGen``/``MsImageDis``,
``configs/unit_*.yaml``); the weight sharing follows the NeurIPS-era code (branch ``version_02``,
``cocogan_nets.py::COCOResGen``), because the later release dropped it (its two ``VAEGen`` share nothing;
mingyuliutw/UNIT#113) while the paper's architecture - and the point of the method - is the sharing. Both versions
use the same loss *ratios* (``version_02``: gan 10, L1 100, KL 0.1; later: 1, 10, 0.01); the later release's
numbers are used here. Per step, with ``mu_a = E_A(a)``, ``z_a = mu_a + n``, ``n ~ N(0, I)`` (unit variance, the
release's "reduced VAE")::

    rec_a = G_A(z_a)   fake_b = G_B(z_a)   mu_a' = E_B(fake_b)   cyc_a = G_A(mu_a' + n')     (same for b)
    kl(mu) = mean(mu**2)   (KL(N(mu, I) || N(0, I)) = sum(mu**2)/2, up to the constant factor)
    total = gan_w (gan_ab + gan_ba) + recon_x_w (recon_a + recon_b) + recon_kl_w (kl_a + kl_b)
            + recon_x_cyc_w (cycle_a + cycle_b) + recon_kl_cyc_w (kl_cyc_a + kl_cyc_b)

with ``recon_a = |rec_a - a|_1``, ``cycle_a = |cyc_a - a|_1``, ``kl_a = kl(mu_a)``, ``kl_cyc_a = kl(mu_a')``,
``gan_ab = sum over scales GAN(D_B(fake_b), real)``. Each discriminator (``D_A``, ``D_B``, multi-scale) minimises
``gan_w sum over scales [GAN(D(real), 1) + GAN(D(fake), 0)]`` (no 1/2, as the release). The noise is drawn from
torch's global RNG (``n_a, n_b, n_a', n_b'`` in that order), so a resumed run draws the same noise.

Networks (release layout, reflection padding): encoder = 7x7 conv, ``n_downsample`` stride-2 4x4 convs (instance
norm, ReLU), ``n_res`` residual blocks of which the last ``n_shared`` are shared; decoder = ``n_res`` residual
blocks of which the first ``n_shared`` are shared, ``n_downsample`` x (nearest x2, 5x5 conv, layer norm, ReLU),
7x7 conv, tanh. Discriminator = ``dis_scales`` PatchGANs on the image average-pooled by 1, 2, 4, ...; each
``dis_n_layer`` stride-2 4x4 convs with LeakyReLU(0.2), no norm, and a 1x1 conv. Generators are initialised with
Kaiming-normal, discriminators with N(0, 0.02), as the release.

Deviations, each for a stated reason:

- One ``nn.Module`` (``nets["G"]``) holds both VAEs and their shared layers, so that one optimiser and DDP see each
  shared parameter once; its ``forward(real_a, real_b)`` computes every output the objective needs.
- The trainer's order (G step, then D step on the G step's detached fakes, as the CycleGAN reference) instead of
  the release's D step first on freshly generated fakes; it saves a generator pass and keeps one trainer for all
  methods. Images reach the discriminators through the trainer's pools: set ``pool_size: 0`` (the presets do),
  UNIT has none.
- Instance norm without running statistics (the release tracks them and uses them at test time, which makes
  inference depend on the last training batches); layer norm is :class:`torch.nn.GroupNorm` with one group
  (per-sample mean/variance over C, H, W, per-channel affine, initialised to 1/0; the release divides by
  ``std + eps`` and draws the scale from U(0, 1)).
- The learning rate follows ``optim.*`` (constant, then linear decay) instead of the release's halving every
  100k iterations; the presets set the release's Adam (lr 1e-4, betas 0.5/0.999, weight decay 1e-4).
- ``loss.gan_mode`` picks LSGAN (default, the release's ``lsgan``) or ``vanilla`` (its ``nsgan``).
- 1-channel MRI in and out (``model.in_channels``/``model.out_channels``); the release's VGG term (``vgg_w: 0``
  in its configs) is not implemented.

Settings: ``loss.options`` (:class:`UNITOptions`). Of ``model.*`` UNIT reads only ``in_channels`` and
``out_channels``; its widths and depths are options.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mri_harmonic.config import require
from mri_harmonic.methods.base import Method, Translator, unwrap
from mri_harmonic.models.losses import GANLoss, l1_loss
from mri_harmonic.models.networks import ResnetBlock, init_weights


@dataclass
class UNITOptions:
    """``loss.options`` of ``unit``; defaults are the release's ``configs/unit_*.yaml``."""

    gan_w: float = 1.0
    """Weight of each adversarial term (generator and discriminator objectives)."""
    recon_x_w: float = 10.0
    """Weight of each within-domain reconstruction L1 term."""
    recon_kl_w: float = 0.01
    """Weight of each KL term of the within-domain codes."""
    recon_x_cyc_w: float = 10.0
    """Weight of each cycle-reconstruction L1 term."""
    recon_kl_cyc_w: float = 0.01
    """Weight of each KL term of the codes of translated images."""
    dim: int = 64
    """Filters of the encoders' first conv (doubled by each downsampling); the release's ``gen.dim``."""
    n_downsample: int = 2
    """Stride-2 convs per encoder (and x2 upsamplings per decoder); image sides must be divisible by 2**it."""
    n_res: int = 4
    """Residual blocks per encoder and per decoder, the shared ones included (the release's ``gen.n_res``)."""
    n_shared: int = 1
    """Of those, blocks shared between the domains: the encoders' last and the decoders' first
    (``n_enc_shared_blk`` = ``n_gen_shared_blk`` = 1 in the NeurIPS configs)."""
    dis_dim: int = 64
    """Filters of each discriminator's first conv (the release's ``dis.dim``)."""
    dis_n_layer: int = 4
    """Stride-2 convs per discriminator scale (the release's ``dis.n_layer``)."""
    dis_scales: int = 3
    """Discriminator scales: the image, then average-pooled by 2, 4, ... (the release's ``dis.num_scales``)."""

    def __post_init__(self) -> None:
        p = "loss.options."
        for name in ("gan_w", "recon_x_w", "recon_kl_w", "recon_x_cyc_w", "recon_kl_cyc_w"):
            require(getattr(self, name) >= 0, p + name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("dim", "dis_dim", "dis_n_layer", "dis_scales"):
            require(getattr(self, name) >= 1, p + name, f"must be >= 1, got {getattr(self, name)}")
        require(0 <= self.n_downsample <= 6, p + "n_downsample", f"must be in 0..6, got {self.n_downsample}")
        require(self.n_res >= 1, p + "n_res", f"must be >= 1, got {self.n_res}")
        require(1 <= self.n_shared <= self.n_res, p + "n_shared",
                f"must be in 1..loss.options.n_res = {self.n_res} (UNIT shares at least one block), "
                f"got {self.n_shared}")


def kl_loss(mu: torch.Tensor) -> torch.Tensor:
    """``mean(mu**2)`` in float32: the release's KL of ``N(mu, I)`` from ``N(0, I)`` up to a constant factor."""
    return mu.float().pow(2).mean()


class UNITGenerator(nn.Module):
    """Both VAEs: ``enc[d]`` then the shared ``enc_shared`` encode domain ``d``; the shared ``dec_shared`` then
    ``dec[d]`` decode into domain ``d``. :meth:`forward` computes everything the generator objective needs."""

    def __init__(self, channels: dict[str, int], o: UNITOptions):
        super().__init__()
        latent = o.dim * 2**o.n_downsample
        private = o.n_res - o.n_shared
        self.enc = nn.ModuleDict({d: self._encoder(c, o, private) for d, c in channels.items()})
        self.enc_shared = nn.Sequential(*[ResnetBlock(latent) for _ in range(o.n_shared)])
        self.dec_shared = nn.Sequential(*[ResnetBlock(latent) for _ in range(o.n_shared)])
        self.dec = nn.ModuleDict({d: self._decoder(c, o, private) for d, c in channels.items()})

    @staticmethod
    def _encoder(channels: int, o: UNITOptions, n_blocks: int) -> nn.Sequential:
        c = o.dim
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, c, 7), nn.InstanceNorm2d(c),
                                   nn.ReLU(True)]
        for _ in range(o.n_downsample):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c, 2 * c, 4, stride=2), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
            c *= 2
        layers += [ResnetBlock(c) for _ in range(n_blocks)]
        return nn.Sequential(*layers)

    @staticmethod
    def _decoder(channels: int, o: UNITOptions, n_blocks: int) -> nn.Sequential:
        c = o.dim * 2**o.n_downsample
        layers: list[nn.Module] = [ResnetBlock(c) for _ in range(n_blocks)]
        for _ in range(o.n_downsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(2), nn.Conv2d(c, c // 2, 5),
                       nn.GroupNorm(1, c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7), nn.Tanh()]
        return nn.Sequential(*layers)

    def encode(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """The latent mean of images of ``domain``."""
        return self.enc_shared(self.enc[domain](x))

    def decode(self, z: torch.Tensor, domain: str) -> torch.Tensor:
        return self.dec[domain](self.dec_shared(z))

    @staticmethod
    def sample(mu: torch.Tensor) -> torch.Tensor:
        """``mu + n``, ``n ~ N(0, I)`` from torch's global RNG (so resumes draw the same noise)."""
        return mu + torch.randn(mu.shape, device=mu.device, dtype=mu.dtype)

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        mu_a, mu_b = self.encode(real_a, "A"), self.encode(real_b, "B")
        h_a, h_b = self.dec_shared(self.sample(mu_a)), self.dec_shared(self.sample(mu_b))  # shared once, used twice
        rec_a, fake_b = self.dec["A"](h_a), self.dec["B"](h_a)
        rec_b, fake_a = self.dec["B"](h_b), self.dec["A"](h_b)
        mu_a_cyc, mu_b_cyc = self.encode(fake_b, "B"), self.encode(fake_a, "A")
        cyc_a, cyc_b = self.decode(self.sample(mu_a_cyc), "A"), self.decode(self.sample(mu_b_cyc), "B")
        return {"mu_a": mu_a, "mu_b": mu_b, "rec_a": rec_a, "rec_b": rec_b, "fake_a": fake_a, "fake_b": fake_b,
                "mu_a_cyc": mu_a_cyc, "mu_b_cyc": mu_b_cyc, "cyc_a": cyc_a, "cyc_b": cyc_b}


class MultiScaleDiscriminator(nn.Module):
    """``scales`` PatchGANs, the k-th on the image average-pooled k times (3x3, stride 2); a list of logit maps."""

    def __init__(self, channels: int, dim: int, n_layer: int, scales: int):
        super().__init__()
        self.nets = nn.ModuleList(self._patch_gan(channels, dim, n_layer) for _ in range(scales))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def _patch_gan(channels: int, dim: int, n_layer: int) -> nn.Sequential:
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, dim, 4, stride=2),
                                   nn.LeakyReLU(0.2, True)]
        for _ in range(n_layer - 1):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, 2 * dim, 4, stride=2), nn.LeakyReLU(0.2, True)]
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, net in enumerate(self.nets):
            if i:
                x = self.pool(x)
            out.append(net(x))
        return out

    @staticmethod
    def smallest_side(n_layer: int, scales: int) -> int:
        """The smallest image side every scale can take (each 4x4 conv needs >= 2 pixels to reflect-pad)."""
        side = 1
        while True:
            n = side
            for _ in range(scales - 1):
                n = -(-n // 2)  # AvgPool2d(3, 2, 1) gives ceil(n / 2)
            if n >= 2**n_layer:
                return side
            side += 1


class UNIT(Method):
    name = "unit"
    summary = "UNIT (Liu et al., NeurIPS 2017): coupled VAE-GANs with a shared latent space and shared layers"
    Options = UNITOptions
    generator_keys = ("G",)
    discriminator_keys = ("D_A", "D_B")
    options: UNITOptions

    def build_networks(self, discriminators: bool = True) -> dict[str, nn.Module]:
        o, m = self.options, self.model_cfg
        nets: dict[str, nn.Module] = {"G": init_weights(UNITGenerator({"A": m.in_channels, "B": m.out_channels}, o),
                                                        "kaiming")}
        if discriminators:
            for d, c in (("D_A", m.in_channels), ("D_B", m.out_channels)):
                d_net = MultiScaleDiscriminator(c, o.dis_dim, o.dis_n_layer, o.dis_scales)
                nets[d] = init_weights(d_net, "normal", 0.02)
        return nets

    def translator(self, source: str) -> nn.Module:
        g = unwrap(self.nets["G"])
        target = {"A": "B", "B": "A"}[source]
        return Translator(lambda x: g.decode(g.encode(x, source), target), generator=g)

    def image_size_problem(self, height: int, width: int) -> str | None:
        o = self.options
        k = 2**o.n_downsample
        if height % k or width % k:
            return (f"not divisible by 2**loss.options.n_downsample = {k}; rebuild the store with another size "
                    "or lower loss.options.n_downsample")
        least = MultiScaleDiscriminator.smallest_side(o.dis_n_layer, o.dis_scales)
        if min(height, width) < least:
            return (f"smaller than {least} pixels, the least that loss.options.dis_n_layer = {o.dis_n_layer} at "
                    f"loss.options.dis_scales = {o.dis_scales} can take; lower either")
        return None

    def prepare_training(self, device, data_statistics=None) -> None:
        super().prepare_training(device, data_statistics)
        self.gan = GANLoss(self.loss_cfg.gan_mode).to(device)

    def _adversarial(self, outputs: list[torch.Tensor], real: bool) -> torch.Tensor:
        return torch.stack([self.gan(out, real) for out in outputs]).sum()

    def generator_objective(self, real_a, real_b):
        o = self.options
        g = self.net("G")(real_a, real_b)
        out = {
            "gan_ab": self._adversarial(self.frozen("D_B")(g["fake_b"]), True),
            "gan_ba": self._adversarial(self.frozen("D_A")(g["fake_a"]), True),
            "recon_a": l1_loss(g["rec_a"], real_a),
            "recon_b": l1_loss(g["rec_b"], real_b),
            "kl_a": kl_loss(g["mu_a"]),
            "kl_b": kl_loss(g["mu_b"]),
            "cycle_a": l1_loss(g["cyc_a"], real_a),
            "cycle_b": l1_loss(g["cyc_b"], real_b),
            "kl_cyc_a": kl_loss(g["mu_a_cyc"]),
            "kl_cyc_b": kl_loss(g["mu_b_cyc"]),
        }
        out["total"] = (o.gan_w * (out["gan_ab"] + out["gan_ba"]) + o.recon_x_w * (out["recon_a"] + out["recon_b"])
                        + o.recon_kl_w * (out["kl_a"] + out["kl_b"])
                        + o.recon_x_cyc_w * (out["cycle_a"] + out["cycle_b"])
                        + o.recon_kl_cyc_w * (out["kl_cyc_a"] + out["kl_cyc_b"]))
        return out, {"A": g["fake_a"], "B": g["fake_b"]}

    def discriminator_objective(self, real_a, real_b, fake_a, fake_b):
        w = self.options.gan_w
        d_a = w * (self._adversarial(self.net("D_A")(real_a), True)
                   + self._adversarial(self.net("D_A")(fake_a.detach()), False))
        d_b = w * (self._adversarial(self.net("D_B")(real_b), True)
                   + self._adversarial(self.net("D_B")(fake_b.detach()), False))
        return {"d_a": d_a, "d_b": d_b, "total": d_a + d_b}
