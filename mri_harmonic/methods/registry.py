"""Method names -> :class:`~mri_harmonic.methods.base.Method` classes: the one place that lists them.

Config validation (``loss.method``, ``loss.options``), the trainer, checkpoints, evaluation and the pipelines read
this registry; nothing else switches on a method's name.
"""

from __future__ import annotations

from typing import Any, Mapping

from mri_harmonic.errors import UserInputError
from mri_harmonic.methods.base import Method
from mri_harmonic.methods.cyclegan import CycleGAN
from mri_harmonic.methods.discogan import DiscoGAN
from mri_harmonic.methods.distancegan import DistanceGAN
from mri_harmonic.methods.harmonic import HarmonicGAN
from mri_harmonic.methods.unit import UNIT

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (HarmonicGAN, CycleGAN, DistanceGAN, DiscoGAN, UNIT)}
#: The method every comparison is made against (the paper's main baseline).
BASELINE = "cyclegan"


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def method_class(name: str, key: str = "loss.method") -> type[Method]:
    """The class registered as ``name``; a one-line error naming ``key`` and the valid names otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UserInputError(f"key '{key}' must be one of {', '.join(map(repr, METHODS))}, got {name!r}") from None


def resolve_options(name: str, options: Mapping[str, Any] | None, key: str = "loss.options") -> dict[str, Any]:
    """``loss.options`` checked against the method's ``Options`` dataclass, with every default filled in."""
    from mri_harmonic.config import from_dict, to_dict

    cls = method_class(name)
    fields = getattr(cls.Options, "__dataclass_fields__", {})
    if options and not fields:
        raise UserInputError(
            f"key '{key}' is not used by method {name!r} (it takes no options; its settings are loss.*); remove it")
    return to_dict(from_dict(cls.Options, options or {}, source="config", prefix=key))


def build_method(model_cfg, loss_cfg, *, discriminators: bool = True) -> Method:
    """An instance of ``loss_cfg.method`` with freshly initialised networks."""
    return method_class(loss_cfg.method)(model_cfg, loss_cfg, discriminators=discriminators)
