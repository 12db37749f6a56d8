"""The shared config machinery: typed loading, unknown keys, wrong types, overrides, resolved dumps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from mri_harmonic.config import config_hash, dump_config, from_dict, load_config, parse_overrides, require, to_dict
from mri_harmonic.errors import UserInputError


@dataclass
class Inner:
    ngf: int = 64
    norm: Literal["instance", "batch"] = "instance"
    value_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self):
        require(self.ngf > 0, "model.ngf", f"must be > 0, got {self.ngf}")


@dataclass
class Outer:
    model: Inner = field(default_factory=Inner)
    lr: float = 2e-4
    name: str | None = None
    flag: bool = False


def test_defaults_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  ngf: 32\nlr: 1e-3\n")
    cfg = load_config(Outer, p, ["model.norm=batch", "flag=true", "model.value_range=[0, 1]"])
    assert cfg.model == Inner(ngf=32, norm="batch", value_range=(0.0, 1.0))
    assert cfg.lr == pytest.approx(1e-3) and cfg.flag is True and cfg.name is None


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"model": {"ngff": 3}}, "key 'model.ngff' is not a known setting"),
        ({"lr": "fast"}, "key 'lr' must be a number"),
        ({"flag": "yes"}, "key 'flag' must be true/false"),
        ({"model": {"norm": "group"}}, "key 'model.norm' must be one of 'instance', 'batch'"),
        ({"model": {"ngf": 1.5}}, "key 'model.ngf' must be an integer"),
        ({"model": {"value_range": [0]}}, "key 'model.value_range' must have 2 items"),
        ({"model": 3}, "key 'model' must be a mapping"),
    ],
)
def test_bad_values_name_the_key_and_source(data, fragment):
    with pytest.raises(UserInputError) as err:
        from_dict(Outer, data, source="configs/x.yaml")
    msg = str(err.value)
    assert fragment in msg and msg.startswith("configs/x.yaml") and "\n" not in msg


def test_post_init_check_names_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {ngf: 0}\n")
    with pytest.raises(UserInputError, match=r"c.yaml: key 'model.ngf' must be > 0"):
        load_config(Outer, p)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_config(Outer, bad)


def test_override_syntax_errors():
    with pytest.raises(UserInputError, match="expected key=value"):
        parse_overrides(["lr"])
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}


def test_errors_name_the_layer_they_come_from(tmp_path):
    """A typo in --set is reported as a --set error, not as one in the YAML file; the file's own errors name it."""
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  ngf: 32\n")
    with pytest.raises(UserInputError) as err:
        load_config(Outer, p, ["model.ngff=8"])
    assert str(err.value).startswith("`overrides`: key 'model.ngff'") and "c.yaml" not in str(err.value)
    p.write_text("model:\n  ngff: 32\n")
    with pytest.raises(UserInputError) as err:
        load_config(Outer, p, ["model.ngf=8"])
    assert str(err.value).startswith(f"{p}: key 'model.ngff'")


def test_bare_set_example_is_a_real_key():
    from mri_harmonic.training.config import load_train_config

    with pytest.raises(UserInputError) as err:
        parse_overrides(["lr"])
    example = str(err.value).split("e.g. '")[1].split("'")[0]
    assert load_train_config(None, [example]).optim.lr == pytest.approx(float(example.split("=")[1]))


def test_dump_roundtrip_and_hash(tmp_path):
    cfg = load_config(Outer, overrides=["model.ngf=16"])
    path = dump_config(cfg, tmp_path / "resolved.yaml")
    text = path.read_text()
    assert text.startswith(f"# resolved config, hash {config_hash(cfg)}")
    again = from_dict(Outer, yaml.safe_load(text))
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Outer, overrides=["model.ngf=8"])) != config_hash(cfg)
    assert to_dict(cfg)["model"]["value_range"] == [-1.0, 1.0]
