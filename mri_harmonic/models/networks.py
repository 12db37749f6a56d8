"""Generator and discriminator of CycleGAN / HarmonicGAN.

Compact re-implementation of the CycleGAN reference (Zhu et al., ICCV 2017; junyanz/pytorch-CycleGAN-and-pix2pix,
``models/networks.py``): a ResNet generator (Johnson et al., ECCV 2016) and the 70x70 PatchGAN discriminator
(Isola et al., CVPR 2017). HarmonicGAN (Zhang, Pfister, Li, ICLR 2019) uses the same networks. With the reference
defaults and 3 input/output channels the parameter counts equal the reference's (11,378,179 and 2,764,737).

One deliberate difference: with ``norm="none"`` the reference drops conv biases as well (its ``use_bias`` is true
only for instance norm); here convs keep their bias when there is no normalisation layer to absorb it.
"""

from __future__ import annotations

import torch
from torch import nn

from mri_harmonic.errors import UserInputError
from mri_harmonic.models.config import ModelConfig


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``instance`` (no affine, no running stats, as the reference), ``batch`` or ``none`` (identity)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected 'instance', 'batch' or 'none'")


def _conv_bias(norm: str) -> bool:
    # BatchNorm's affine shift makes a conv bias redundant; instance norm without affine keeps the bias (reference).
    return norm != "batch"


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, norm, ReLU, (dropout), pad, conv3x3, norm](x)`` with reflection padding."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator: reflection pad + 7x7 conv, ``n_downsampling`` stride-2 3x3 convs, ``n_blocks``
    :class:`ResnetBlock`, as many x2 upsamplings (stride-2 transposed convs as the reference, or resize + reflection
    pad + 3x3 conv for ``upsample="nearest"|"bilinear"``), reflection pad + 7x7 conv, tanh.

    Input ``(B, in_channels, H, W)`` with ``H`` and ``W`` divisible by ``2**n_downsampling``; output
    ``(B, out_channels, H, W)`` in [-1, 1].
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64, n_blocks: int = 9,
                 n_downsampling: int = 2, norm: str = "instance", use_dropout: bool = False,
                 upsample: str = "transpose", keep_background: bool = False):
        super().__init__()
        self.keep_background = keep_background
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True),
        ]
        for i in range(n_downsampling):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        c = ngf * 2**n_downsampling
        layers += [ResnetBlock(c, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c = ngf * 2 ** (n_downsampling - i)
            if upsample == "transpose":
                up: list[nn.Module] = [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            else:
                up = [nn.Upsample(scale_factor=2, mode=upsample), nn.ReflectionPad2d(1), nn.Conv2d(c, c // 2, 3, bias=bias)]
            layers += [*up, norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.multiple = 2**n_downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise UserInputError(f"generator input sides {tuple(x.shape[-2:])} must be divisible by {self.multiple} "
                                 "(2**model.n_downsampling); pad or crop the images or lower key 'model.n_downsampling'")
        y = self.model(x)
        if self.keep_background:  # exact background (-1: zero intensity) stays background; the network need not draw it
            y = torch.where(x[:, :1] <= -1.0, torch.full_like(y, -1.0), y)
        return y


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``d_layers`` stride-2 4x4 convs, one stride-1 4x4 conv, a 1-channel 4x4 conv; LeakyReLU(0.2).

    With ``d_layers=3`` each output pixel sees a 70x70 input patch; a 256x256 input gives a 30x30 map of logits.
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, d_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, d_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < d_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Reference ``init_weights``: conv weights ~ ``init_type``, biases 0; BatchNorm weight ~ N(1, gain), bias 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unknown init_type {init_type!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def build_generator(cfg: ModelConfig) -> nn.Module:
    """An initialised :class:`ResnetGenerator` (``in_channels -> out_channels``; swap them for ``G_BA``)."""
    net = ResnetGenerator(cfg.in_channels, cfg.out_channels, cfg.ngf, cfg.n_blocks, cfg.n_downsampling, cfg.norm,
                          cfg.use_dropout, cfg.upsample, cfg.keep_background)
    return init_weights(net, cfg.init_type, cfg.init_gain)


def build_discriminator(cfg: ModelConfig, in_channels: int | None = None) -> nn.Module:
    """An initialised :class:`NLayerDiscriminator` over images of ``in_channels`` (default ``cfg.out_channels``,
    i.e. ``D_B``; pass ``cfg.in_channels`` for ``D_A`` when the two differ)."""
    net = NLayerDiscriminator(cfg.out_channels if in_channels is None else in_channels, cfg.ndf, cfg.d_layers,
                              cfg.norm)
    return init_weights(net, cfg.init_type, cfg.init_gain)
