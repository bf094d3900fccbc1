"""The shipped models (``polyfold/ddsp/weights``) and loading a model by name or path."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from polyfold.core.errors import InputError
from polyfold.core.export import LoadedModel, load_model

__all__ = ["SHIPPED", "SHIPPED_VOCODERS", "load_autoencoder", "load_vocoder", "shipped_path"]

#: instrument name -> file stem in polyfold/ddsp/weights
SHIPPED = {"violin": "violin"}
#: speaker name -> file stem of a shipped DDSP vocoder
SHIPPED_VOCODERS = {"slt": "slt_vocoder"}


def shipped_path(name: str) -> Path:
    """The weights stem of a shipped model."""
    stem = SHIPPED.get(name) or SHIPPED_VOCODERS[name]
    return Path(str(resources.files("polyfold.ddsp").joinpath("weights", stem)))


def _load(model: str | Path, names: dict[str, str], command: str) -> LoadedModel:
    """The shipped model ``model`` among ``names``, or a model file written by ``command``."""
    if str(model) in names:
        path = shipped_path(str(model))
        if not path.with_suffix(".safetensors").exists():
            raise InputError(f"--model {model}: the shipped weights are missing from this install")
        return load_model(path)
    if not Path(model).with_suffix(".json").exists() and not Path(model).exists():
        raise InputError(
            f"--model {model}: expected one of {', '.join(names)} or a model file from `{command}`"
        )
    return load_model(model)


def load_autoencoder(model: str | Path) -> LoadedModel:
    """A shipped model by name (``violin``) or a model file written by ``train``."""
    return _load(model, SHIPPED, "train")


def load_vocoder(model: str | Path) -> LoadedModel:
    """A shipped DDSP vocoder by name (``slt``) or a model file written by ``train-vocoder``."""
    import polyfold.ddsp.vocoder  # noqa: F401  (registers ddsp.DDSPVocoder)

    loaded = _load(model, SHIPPED_VOCODERS, "train-vocoder")
    if loaded.card.get("model_class", "ddsp.DDSPVocoder") != "ddsp.DDSPVocoder" or not hasattr(
        loaded.model, "check_mel"
    ):
        raise InputError(f"--model {model}: not a DDSP vocoder (train one with `train-vocoder`)")
    return loaded
