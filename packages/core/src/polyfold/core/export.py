"""One model file format for every polyfold package: safetensors weights plus a JSON card.

A saved model is a pair of files sharing one stem ``X``::

    X.safetensors    the weights (``model.state_dict()``), plus any extra tensors
    X.json           the card: {"format": "polyfold-model", "format_version": 1,
                                "model_class": <registered name>, "config": {...},
                                "polyfold_version": ..., "weights_sha256": ...,
                                "card": {"data_card", "command", "metrics", ...}}

``path`` may be given as the stem ``X`` or as either file (``X.safetensors`` / ``X.json``).

:func:`save_model` writes both files atomically: each goes to a hidden temporary file in the same
folder (flushed and ``fsync``-ed), then the weights and, last, the card are moved into place with
``os.replace``. A failure before the moves leaves any previous pair untouched; the card records
the SHA-256 of its weights, so a pair torn between the two moves is refused, never read as valid.

:func:`load_model` reads JSON and safetensors only (nothing is unpickled) and builds only classes
that polyfold packages registered, with :func:`register_model` in the running process or in the
``polyfold.models`` entry-point group of an installed package's metadata (``name =
"module:Class"``). A dotted name read from a file is never imported. The class is built with
``cls.from_config(config)`` when it defines it, else ``cls(**config)``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import safetensors.torch
import torch
from torch import Tensor

from polyfold.core._version import __version__
from polyfold.core.errors import InputError
from polyfold.core.train.checkpoint import fsync_dir

__all__ = [
    "CARD_SUFFIX",
    "ENTRY_POINT_GROUP",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_SUFFIX",
    "LoadedModel",
    "load_model",
    "model_files",
    "read_card",
    "register_model",
    "registered_models",
    "save_model",
]

FORMAT = "polyfold-model"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
ENTRY_POINT_GROUP = "polyfold.models"

_REGISTRY: dict[str, type] = {}
_T = TypeVar("_T", bound=type)


class SavableModel(Protocol):
    """What :func:`save_model` needs: a ``torch.nn.Module`` or any object with these two."""

    def state_dict(self) -> Mapping[str, Tensor]: ...

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = ...) -> Any: ...


@dataclass(frozen=True)
class LoadedModel:
    """What :func:`load_model` returns: the built model (in eval mode), its config, its card,
    and the extra tensors saved with ``save_model(tensors=...)``."""

    model: Any
    config: dict[str, Any]
    card: dict[str, Any]
    tensors: dict[str, Tensor] = field(default_factory=dict)


# --- registry -----------------------------------------------------------------------------------


def register_model(target: str | _T, /, *, name: str | None = None) -> Any:
    """Register a model class under a name so :func:`load_model` may build it.

    Use as a class decorator, ``@register_model("graph.GDSSScore")``, or as a call,
    ``register_model(PFN, name="tabular.PFN")``. Registering another class under a taken name
    raises ``ValueError``; registering the same class again is a no-op.
    """
    if isinstance(target, type):
        if not isinstance(name, str):
            raise TypeError("register_model(cls, name=...): expected the name as a str keyword")
        return _register(name, target)
    if name is not None or not isinstance(target, str):
        raise TypeError("register_model: expected register_model(name) or (cls, name=...)")
    key = target

    def decorate(cls: _T) -> _T:
        return _register(key, cls)

    return decorate


def _register(name: str, cls: _T) -> _T:
    if not name or not isinstance(cls, type):
        raise TypeError(f"register_model: expected a class and a non-empty name, got {name!r}")
    old = _REGISTRY.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"register_model: {name!r} already names {old.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def registered_models() -> list[str]:
    """Names registered in this process (entry points not yet loaded are not listed)."""
    return sorted(_REGISTRY)


def _entry_point_class(name: str) -> type | None:
    """The class an installed package declares for ``name`` in ``polyfold.models``, if any."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                cls = ep.load()
            except (ImportError, AttributeError) as err:
                raise InputError(
                    f"entry point {ENTRY_POINT_GROUP}:{name} = {ep.value!r} cannot be "
                    f"loaded ({err}); reinstall the package that declares it"
                ) from None
            if not isinstance(cls, type):
                raise InputError(
                    f"entry point {ENTRY_POINT_GROUP}:{name} = {ep.value!r}: expected a class"
                )
            return _register(name, cls)
    return None


def _entry_point_names() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _model_class(name: object, card_path: Path) -> type:
    if not isinstance(name, str) or not name:
        raise InputError(f"{card_path}: model_class: expected a registered model name")
    cls = _REGISTRY.get(name) or _entry_point_class(name)
    if cls is None:
        known = sorted(set(_REGISTRY) | set(_entry_point_names()))
        raise InputError(
            f"{card_path}: model_class {name!r} is not a registered polyfold model "
            f"(registered: {', '.join(known) or 'none'}); install or import the package "
            "that provides it"
        )
    return cls


# --- paths and JSON -----------------------------------------------------------------------------


def model_files(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(weights, card)`` for a stem ``X`` or either file of the pair."""
    p = Path(path)
    if p.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + WEIGHTS_SUFFIX), p.with_name(p.name + CARD_SUFFIX)


def _check_json(value: Any, where: str) -> None:
    """Raise :class:`InputError` naming the first field that JSON cannot hold."""
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"{where}: expected string keys, got {k!r}")
            _check_json(v, f"{where}[{k!r}]")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
        return
    raise InputError(
        f"{where}: expected JSON values (numbers, strings, lists, dicts, None), "
        f"got a {type(value).__name__}"
    )


# --- writing ------------------------------------------------------------------------------------


def _save_bytes(tensors: dict[str, Tensor]) -> bytes:
    """safetensors bytes (a module attribute so tests can make the write fail)."""
    return bytes(safetensors.torch.save(tensors))


def _write_temp(final: Path, data: bytes) -> Path:
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def save_model(
    model: SavableModel,
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any],
    card: Mapping[str, Any] | None = None,
    name: str | None = None,
    tensors: Mapping[str, Tensor] | None = None,
) -> Path:
    """Write ``model``'s weights and card to ``X.safetensors`` + ``X.json``; returns the weights.

    ``config`` are the hyperparameters that rebuild the model (JSON), ``card`` the free-form
    record (``data_card``, ``command``, ``metrics`` and any further fields). ``name`` is the
    registered class name (default: the name ``type(model)`` is registered under). ``tensors``
    are extra tensors stored beside the weights under ``extra.<key>``.
    """
    cls_name = name or next((k for k, v in _REGISTRY.items() if v is type(model)), None)
    if cls_name is None or cls_name not in _REGISTRY:
        raise InputError(
            f"model: {type(model).__qualname__} is not registered with "
            "polyfold.core.export.register_model (or pass name=...)"
        )
    if not isinstance(model, _REGISTRY[cls_name]):
        raise InputError(
            f"name: {cls_name!r} names {_REGISTRY[cls_name].__qualname__}, "
            f"not the {type(model).__qualname__} given"
        )
    if not isinstance(config, Mapping):
        raise InputError(f"config: expected a mapping, got a {type(config).__name__}")
    _check_json(config, "config")
    card = {} if card is None else card
    if not isinstance(card, Mapping):
        raise InputError(f"card: expected a mapping, got a {type(card).__name__}")
    _check_json(card, "card")
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    for k, v in (tensors or {}).items():
        if not isinstance(v, Tensor):
            raise InputError(f"tensors[{k!r}]: expected a tensor, got a {type(v).__name__}")
        flat[f"extra.{k}"] = v.detach().cpu().contiguous().clone()
    data = _save_bytes(flat)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_class": cls_name,
        "config": dict(config),
        "polyfold_version": __version__,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "card": dict(card),
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    weights, card_path = model_files(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp_w = _write_temp(weights, data)
    try:
        tmp_c = _write_temp(card_path, text.encode("utf-8"))
    except BaseException:
        tmp_w.unlink(missing_ok=True)
        raise
    try:
        os.chmod(tmp_w, 0o644)  # readable like any file the user writes (mkstemp-free)
        os.chmod(tmp_c, 0o644)
        os.replace(tmp_w, weights)
        os.replace(tmp_c, card_path)  # last: the pair is complete once the card is in place
    finally:
        tmp_w.unlink(missing_ok=True)
        tmp_c.unlink(missing_ok=True)
    fsync_dir(weights.parent)
    return weights


# --- reading ------------------------------------------------------------------------------------


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed card of a pair (checked for format and fields; the weights are not read)."""
    _, card_path = model_files(path)
    if not card_path.is_file():
        raise InputError(f"{card_path}: missing; expected a polyfold model card (JSON)")
    try:
        record = json.loads(card_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{card_path}: expected a polyfold model card (JSON): {err}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"{card_path}: not a polyfold model card (expected format {FORMAT!r})")
    version = record.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise InputError(
            f"{card_path}: format_version {version!r} is not supported (expected 1 to "
            f"{FORMAT_VERSION}; a newer polyfold wrote it)"
        )
    for key, kind in (("config", dict), ("card", dict), ("weights_sha256", str)):
        if not isinstance(record.get(key), kind):
            raise InputError(f"{card_path}: {key}: expected a {kind.__name__}")
    return record


def _read_weights(weights: Path, expected_sha: str) -> dict[str, Tensor]:
    if not weights.is_file():
        raise InputError(f"{weights}: missing; expected the safetensors weights of the card")
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected_sha:
        raise InputError(
            f"{weights}: does not match its card (truncated, or written by another save); "
            "expected the weights the card was saved with"
        )
    try:
        return safetensors.torch.load(data)
    except Exception as err:  # safetensors raises its own error types
        raise InputError(f"{weights}: expected safetensors weights: {err}") from None


def _build(cls: type, config: dict[str, Any], card_path: Path) -> Any:
    try:
        build = getattr(cls, "from_config", None)
        return build(config) if callable(build) else cls(**config)
    except (TypeError, ValueError) as err:
        if isinstance(err, InputError):
            raise InputError(f"{card_path}: config: {err}") from None
        raise InputError(f"{card_path}: config does not build {cls.__qualname__}: {err}") from None


def load_model(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
) -> LoadedModel:
    """Read a pair written by :func:`save_model` and build its registered model class.

    The model is returned in eval mode on ``map_location``.
    """
    weights, card_path = model_files(path)
    record = read_card(path)
    cls = _model_class(record.get("model_class"), card_path)
    model = _build(cls, record["config"], card_path)
    state = _read_weights(weights, record["weights_sha256"])
    extra = {k[len("extra.") :]: state.pop(k) for k in list(state) if k.startswith("extra.")}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise InputError(
            f"{weights}: the weights do not fit {record['model_class']}: "
            f"missing keys {missing}, unexpected keys {unexpected}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(
            f"{weights}: the weights do not fit {record['model_class']}: {err}"
        ) from None
    if hasattr(model, "to") and str(map_location) != "cpu":
        model = model.to(map_location)
    if callable(getattr(model, "eval", None)):
        model.eval()
    return LoadedModel(model=model, config=record["config"], card=record["card"], tensors=extra)
