"""Model files: safetensors weights + a JSON config + the tokenizer's JSON.

A saved model ``<name>`` is three files in one folder::

    <name>.safetensors       weights (the EMA weights of a training run)
    <name>.json              {"model_class", "model_config", "tokenizer_file", "data_card",
                              "command", "steps", "metrics", "polyfold_text_version", ...}
    <name>.tokenizer.json    the tokenizer (character vocabulary or tokenizers' BPE JSON)

:func:`load_checkpoint` reads such a model from its name in the shipped ``weights/`` folder,
from the ``.json`` or ``.safetensors`` path, or from a trainer run folder (core checkpoint with a
``tokenizer.json`` beside it). Nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.core.train import load_checkpoint as load_core_checkpoint
from polyfold.core.train import load_weights
from polyfold.text._version import __version__
from polyfold.text.model import build_model
from polyfold.text.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer

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


def shipped_models() -> list[str]:
    """Names of the models in the package's ``weights/`` folder."""
    return sorted(
        p.stem
        for p in WEIGHTS_DIR.glob("*.json")
        if not p.name.endswith(".tokenizer.json")
        and (WEIGHTS_DIR / f"{p.stem}.safetensors").is_file()
    )


def save_model(
    model: nn.Module,
    tokenizer: CharTokenizer | BPETokenizer,
    folder: str | Path,
    name: str,
    **info: Any,
) -> Path:
    """Write ``<name>.safetensors``, ``<name>.tokenizer.json`` and ``<name>.json`` (with
    ``info``: data_card, command, steps, metrics, ...); return the JSON path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(folder / f"{name}.safetensors"))
    tok_file = f"{name}.tokenizer.json"
    tokenizer.save(folder / tok_file)
    config = {
        "model_class": type(model).__name__,
        "model_config": model.config,  # type: ignore[attr-defined]
        "tokenizer_file": tok_file,
        "tokenizer_kind": tokenizer.kind,
        "polyfold_text_version": __version__,
        **info,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


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
    """``(model in eval mode, tokenizer, config)`` from a shipped name, a file or a run folder."""
    kind, path = _resolve(path_or_name)
    if kind == "file":
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise InputError(f"checkpoint: cannot read {path}: {err}") from None
        if not isinstance(config, dict) or "model_class" not in config:
            raise InputError(f"checkpoint: {path} is not a polyfold-text model config")
        model = build_model(config["model_class"], config["model_config"])
        weights = path.with_suffix(".safetensors")
        if not weights.is_file():
            raise InputError(f"checkpoint: {weights} is missing")
        state = safetensors.torch.load_file(str(weights), device="cpu")
        tokenizer = load_tokenizer(path.parent / config["tokenizer_file"])
    else:
        ckpt = load_core_checkpoint(path)
        config = dict(ckpt.config)
        if not config.get("model_class") or not config.get("model_config"):
            raise InputError(f"checkpoint: {ckpt.path} has no model class/config")
        model = build_model(config["model_class"], config["model_config"])
        state = load_weights(ckpt.path)
        tok_path = Path(path) / RUN_TOKENIZER
        if not tok_path.is_file():
            tok_path = ckpt.path.parent / RUN_TOKENIZER
        if not tok_path.is_file():
            raise InputError(f"checkpoint: no {RUN_TOKENIZER} beside the run {path}")
        tokenizer = load_tokenizer(tok_path)
        config["steps"] = ckpt.step
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"checkpoint: weights do not fit the model: {err}") from None
    if model.config["vocab_size"] != tokenizer.vocab_size:  # type: ignore[index]
        raise InputError(
            f"checkpoint: the tokenizer has {tokenizer.vocab_size} tokens, the model "
            f"{model.config['vocab_size']}"  # type: ignore[index]
        )
    return model.eval(), tokenizer, config
