"""Model files: a :mod:`polyfold.core.export` pair whose card also holds the tokenizer.

A saved model ``<name>`` is two files in one folder::

    <name>.safetensors       weights (the EMA weights of a training run)
    <name>.json              core model card: model class, config, and in its card the
                             tokenizer ("tokenizer": its JSON), "data_card", "command",
                             "steps", "metrics", "polyfold_text_version", ...

:func:`load_checkpoint` reads such a model from its name in the shipped ``weights/`` folder,
from the ``.json`` or ``.safetensors`` path, or from a trainer run folder (core checkpoint with a
``tokenizer.json`` beside it). Nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from polyfold.core import export
from polyfold.core.errors import InputError
from polyfold.core.train import load_checkpoint as load_core_checkpoint
from polyfold.core.train import load_weights
from polyfold.text._version import __version__
from polyfold.text.model import MODEL_CLASSES, build_model
from polyfold.text.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    tokenizer_from_json,
)

__all__ = [
    "DEFAULT_AR",
    "DEFAULT_JSON_MDLM",
    "DEFAULT_MDLM",
    "WEIGHTS_DIR",
    "load_checkpoint",
    "save_model",
    "shipped_models",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MDLM = "shakespeare-char-mdlm"
DEFAULT_AR = "shakespeare-char-ar"
DEFAULT_JSON_MDLM = "json-records-char-mdlm"  # S^3's model
RUN_TOKENIZER = "tokenizer.json"
MODEL_CLASSES_TUPLE = tuple(MODEL_CLASSES.values())


def shipped_models() -> list[str]:
    """Names of the models in the package's ``weights/`` folder."""
    return sorted(
        p.stem
        for p in WEIGHTS_DIR.glob("*.json")
        if (WEIGHTS_DIR / f"{p.stem}.safetensors").is_file()
    )


def save_model(
    model: nn.Module,
    tokenizer: CharTokenizer | BPETokenizer,
    folder: str | Path,
    name: str,
    **info: Any,
) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (the tokenizer and ``info``: data_card,
    command, steps, metrics, ... in the card) with core's export; return the JSON path."""
    card = {
        "tokenizer_kind": tokenizer.kind,
        "tokenizer": tokenizer.to_json(),
        "polyfold_text_version": __version__,
        **info,
    }
    weights = export.save_model(
        model,
        Path(folder) / name,
        config=model.config,  # type: ignore[arg-type]
        card=card,
    )
    return weights.with_suffix(".json")


def _resolve(path_or_name: str | Path) -> tuple[str, Path]:
    """``("file", json path)`` or ``("run", run folder)``."""
    p = Path(path_or_name)
    if isinstance(path_or_name, str) and (WEIGHTS_DIR / f"{path_or_name}.json").is_file():
        return "file", WEIGHTS_DIR / f"{path_or_name}.json"
    if p.suffix == ".safetensors" and p.with_suffix(".json").is_file():
        return "file", p.with_suffix(".json")
    if p.suffix == ".json" and p.is_file():
        return "file", p
    if p.is_dir():
        return "run", p
    known = ", ".join(shipped_models()) or "none shipped"
    raise InputError(
        f"checkpoint: expected a shipped model name ({known}), a model .json/.safetensors file "
        f"or a training run folder, got {str(path_or_name)!r}"
    )


def load_checkpoint(path_or_name: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """``(model in eval mode, tokenizer, config)`` from a shipped name, a file or a run folder.

    ``config`` is the model card with ``model_class`` and ``model_config`` added."""
    kind, path = _resolve(path_or_name)
    if kind == "file":
        loaded = export.load_model(path)
        model = loaded.model
        if not isinstance(model, MODEL_CLASSES_TUPLE):
            raise InputError(f"checkpoint: {path} holds a {type(model).__name__}, not a text model")
        config = {
            **loaded.card,
            "model_class": type(model).__name__,
            "model_config": loaded.config,
        }
        tokenizer = tokenizer_from_json(config.pop("tokenizer", None), source=str(path))
    else:
        ckpt = load_core_checkpoint(path)
        config = dict(ckpt.config)
        if not config.get("model_class") or not config.get("model_config"):
            raise InputError(f"checkpoint: {ckpt.path} has no model class/config")
        model = build_model(config["model_class"], config["model_config"])
        try:
            model.load_state_dict(load_weights(ckpt.path))
        except RuntimeError as err:
            raise InputError(f"checkpoint: weights do not fit the model: {err}") from None
        tok_path = Path(path) / RUN_TOKENIZER
        if not tok_path.is_file():
            tok_path = ckpt.path.parent / RUN_TOKENIZER
        if not tok_path.is_file():
            raise InputError(f"checkpoint: no {RUN_TOKENIZER} beside the run {path}")
        tokenizer = load_tokenizer(tok_path)
        config["steps"] = ckpt.step
    if model.config["vocab_size"] != tokenizer.vocab_size:  # type: ignore[index]
        raise InputError(
            f"checkpoint: the tokenizer has {tokenizer.vocab_size} tokens, the model "
            f"{model.config['vocab_size']}"  # type: ignore[index]
        )
    return model.eval(), tokenizer, config
