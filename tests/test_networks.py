"""Generator / discriminator: shapes, ranges, reference parameter counts, PatchGAN receptive field, init, config."""

from __future__ import annotations

import pytest
import torch

from mri_harmonic.config import from_dict
from mri_harmonic.errors import UserInputError
from mri_harmonic.models.config import ModelConfig
from mri_harmonic.models.networks import NLayerDiscriminator, ResnetGenerator, build_discriminator, build_generator


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_match_cyclegan_reference():
    # junyanz/pytorch-CycleGAN-and-pix2pix prints these for resnet_9blocks / basic D with input_nc = output_nc = 3.
    cfg = ModelConfig(in_channels=3, out_channels=3)
    assert n_params(build_generator(cfg)) == 11_378_179
    assert n_params(build_discriminator(cfg)) == 2_764_737


def test_generator_shape_and_range():
    torch.manual_seed(0)
    cfg = ModelConfig(ngf=8, n_blocks=2, init_gain=1.0)  # large init to drive tanh towards saturation
    g = build_generator(cfg)
    x = torch.randn(2, 1, 32, 48) * 3
    y = g(x)
    assert y.shape == (2, 1, 32, 48)
    assert y.min() >= -1 and y.max() <= 1
    assert y.abs().max() > 0.5  # not a trivially tiny output
    # channels_last input gives the same result
    torch.testing.assert_close(g(x.contiguous(memory_format=torch.channels_last)), y, atol=1e-5, rtol=1e-5)


def test_generator_rejects_sizes_not_divisible():
    g = ResnetGenerator(1, 1, ngf=4, n_blocks=1, n_downsampling=2)
    with pytest.raises(UserInputError, match="divisible by 4"):
        g(torch.zeros(1, 1, 30, 32))


@pytest.mark.parametrize("size,expected", [(256, 30), (128, 14), (64, 6)])
def test_patchgan_output_map_size(size, expected):
    d = NLayerDiscriminator(1, ndf=4, d_layers=3)
    assert d(torch.zeros(1, 1, size, size)).shape == (1, 1, expected, expected)


def test_patchgan_receptive_field_is_70x70():
    """Gradient support of one interior output logit w.r.t. the input (no norm layer, which would couple all
    pixels) is exactly a 70x70 square."""
    torch.manual_seed(0)
    d = NLayerDiscriminator(1, ndf=4, d_layers=3, norm="none")
    for m in d.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.uniform_(m.weight, 0.1, 0.2)  # positive weights: no accidental cancellation
    d = d.double()
    x = torch.rand(1, 1, 160, 160, dtype=torch.float64, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs() > 0).any(dim=1).nonzero().flatten()
    cols = (x.grad[0, 0].abs() > 0).any(dim=0).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


def test_build_discriminator_channels_and_init():
    torch.manual_seed(0)
    cfg = ModelConfig(in_channels=2, out_channels=1, ndf=16)
    d_b, d_a = build_discriminator(cfg), build_discriminator(cfg, in_channels=cfg.in_channels)
    assert d_b.model[0].in_channels == 1 and d_a.model[0].in_channels == 2
    w = torch.cat([m.weight.detach().flatten() for m in d_a.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(w.std()) - 0.02) < 0.002  # N(0, 0.02), reference init
    assert all(float(m.bias.detach().abs().max()) == 0 for m in d_a.modules() if isinstance(m, torch.nn.Conv2d)
               and m.bias is not None)


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("init_type", ["xavier", "kaiming", "orthogonal"])
def test_other_norms_and_inits_build_and_run(norm, init_type):
    cfg = ModelConfig(ngf=4, ndf=4, n_blocks=1, norm=norm, init_type=init_type, use_dropout=True)
    g, d = build_generator(cfg), build_discriminator(cfg)
    y = g(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 1, 32, 32) and torch.isfinite(y).all()
    assert torch.isfinite(d(y)).all()


@pytest.mark.parametrize("data,key", [
    ({"ngf": 0}, "model.ngf"),
    ({"n_blocks": -1}, "model.n_blocks"),
    ({"d_layers": 0}, "model.d_layers"),
    ({"init_gain": 0}, "model.init_gain"),
])
def test_model_config_validation(data, key):
    with pytest.raises(UserInputError, match=key.replace(".", r"\.")):
        from_dict(ModelConfig, data, source="cfg.yaml")


def test_model_config_rejects_unknown_norm():
    with pytest.raises(UserInputError, match="norm"):
        from_dict(ModelConfig, {"norm": "layer"})
    with pytest.raises(UserInputError, match="model.norm"):
        ModelConfig(norm="layer")


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_resize_convolution_has_no_checkerboard(upsample):
    """A constant image stays constant through a resize-convolution generator away from the borders (the stride-2 convs
    zero-pad), while stride-2 transposed convs with kernel 3 overlap unevenly and print a period-2 pattern
    (Odena et al. 2016) -- the reason for ``model.upsample``. Same parameter count either way."""
    torch.manual_seed(0)
    kwargs = dict(ngf=4, n_blocks=1, norm="none", init_gain=0.1)
    resize = build_generator(ModelConfig(upsample=upsample, **kwargs))
    transpose = build_generator(ModelConfig(upsample="transpose", **kwargs))
    assert n_params(resize) == n_params(transpose)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in resize.modules())
    x = torch.full((1, 1, 96, 96), 0.3)
    with torch.no_grad():  # the centre 32x32 lies beyond the generator's receptive field of any border
        y_resize, y_transpose = resize(x)[0, 0, 32:-32, 32:-32], transpose(x)[0, 0, 32:-32, 32:-32]
    assert y_transpose.abs().max() < 0.99  # tanh not saturated
    assert (y_resize - y_resize.mean()).abs().max() < 1e-6
    assert (y_transpose - y_transpose.mean()).abs().max() > 1e-3


def test_model_config_rejects_unknown_upsample():
    with pytest.raises(UserInputError, match="model.upsample"):
        ModelConfig(upsample="pixelshuffle")


def test_keep_background_outputs_background_where_the_input_is_background_only():
    torch.manual_seed(0)
    plain = build_generator(ModelConfig(ngf=8, n_blocks=1))
    keep = build_generator(ModelConfig(ngf=8, n_blocks=1, keep_background=True))
    keep.load_state_dict(plain.state_dict())  # same weights: the option adds no parameters
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    x[:, :, :6] = -1.0  # background rows
    with torch.no_grad():
        a, b = plain(x), keep(x)
    assert (b[:, :, :6] == -1).all() and not (a[:, :, :6] == -1).all()
    assert torch.equal(a[:, :, 6:], b[:, :, 6:])
