"""Atomic, pickle-free checkpoints: safetensors for tensors, JSON for everything else.

A run folder holds one sub-folder per saved step plus a ``latest`` pointer::

    run/
      latest                  text: the name of the newest complete checkpoint
      step_00000012/
        model.safetensors     model weights
        ema.safetensors       EMA weights (when the run keeps an EMA)
        state.safetensors     optimizer tensors, RNG states
        config.json           model class and config, hyperparameters, step, data position,
                              the non-tensor optimizer/scheduler state, polyfold version, command

Writing is atomic: every file goes to a hidden temporary folder in the run folder, each file is
flushed and ``fsync``-ed, then the folder is renamed to its final name with ``os.replace`` (and
the run folder ``fsync``-ed), then ``latest`` is rewritten the same way (temporary file, fsync,
``os.replace``). A crash at any point leaves the previous checkpoint complete and ``latest``
naming a complete checkpoint; hidden ``.tmp-*`` folders left by a crash are ignored and cleaned
on the next save.

Reading uses ``safetensors.torch.load_file`` and ``json`` only: nothing is ever unpickled.
Nested state (an optimizer's ``state_dict``) is split by :func:`split_tree` into a JSON tree with
``{"__tensor__": key}`` placeholders and a flat dict of tensors, and rebuilt by
:func:`join_tree`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = [
    "CONFIG_FILE",
    "Checkpoint",
    "atomic_write",
    "fsync_dir",
    "join_tree",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "resolve_checkpoint",
    "save_checkpoint",
    "split_tree",
    "step_name",
]

CONFIG_FILE = "config.json"
LATEST_FILE = "latest"
_STEP_RE = re.compile(r"^step_(\d+)$")


# --- nested state <-> (JSON tree, tensors) -------------------------------------------------------


def split_tree(tree: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """A JSON-friendly copy of ``tree`` with each tensor moved into ``tensors``.

    Tensors become ``{"__tensor__": key}`` (keys start with ``prefix``), tuples become
    ``{"__tuple__": [...]}``, dict keys are kept with their type (``{"__dict__": [[k, v], ...]}``
    when a key is not a string). Anything else must be a JSON scalar.
    """
    if isinstance(tree, np.generic):  # numpy scalars in optimizer options and the like
        tree = tree.item()
    if isinstance(tree, Tensor):
        key = f"{prefix}"
        if key in tensors:
            raise ValueError(f"duplicate tensor key {key!r}")
        tensors[key] = tree.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(tree, Mapping):
        items = list(tree.items())
        if all(isinstance(k, str) for k in tree) and not any(k.startswith("__") for k in tree):
            return {k: split_tree(v, f"{prefix}.{k}", tensors) for k, v in items}
        pairs = []
        for i, (k, v) in enumerate(items):
            if not isinstance(k, str | int | float | bool) and k is not None:
                raise InputError(f"checkpoint state: unsupported dict key {k!r} at {prefix!r}")
            pairs.append([k, split_tree(v, f"{prefix}.{i}", tensors)])
        return {"__dict__": pairs}
    if isinstance(tree, tuple):
        return {"__tuple__": [split_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [split_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, str | bool | int | float):
        return tree
    raise InputError(
        f"checkpoint state: cannot store a {type(tree).__name__} at {prefix!r} "
        "(expected tensors, numbers, strings, lists, tuples and dicts)"
    )


def join_tree(tree: Any, tensors: Mapping[str, Tensor]) -> Any:
    """Inverse of :func:`split_tree`."""
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__tuple__"}:
            return tuple(join_tree(v, tensors) for v in tree["__tuple__"])
        if set(tree) == {"__dict__"}:
            return {k: join_tree(v, tensors) for k, v in tree["__dict__"]}
        return {k: join_tree(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tree(v, tensors) for v in tree]
    return tree


# --- atomic file system primitives ---------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_fully(fh: Any, data: bytes) -> None:
    """Write ``data`` to the open file (a separate function so tests can fail it midway)."""
    fh.write(data)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        _write_fully(fh, data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        _write_durable(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` durably through a temporary file in the same
    folder, so a reader sees the old file or the new one, never a torn write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _serialize(tensors: Mapping[str, Tensor]) -> bytes:
    """safetensors bytes; tensors that share storage are stored as separate copies."""
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    return bytes(safetensors.torch.save(flat))


# --- checkpoints --------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded checkpoint: its folder, the JSON config and each safetensors file's tensors."""

    path: Path
    config: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]]

    @property
    def step(self) -> int:
        return int(self.config["step"])


def step_name(step: int) -> str:
    return f"step_{step:08d}"


def _clean_stale(root: Path) -> None:
    for p in root.glob(".tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def save_checkpoint(
    root: str | Path,
    step: int,
    files: Mapping[str, Mapping[str, Tensor]],
    config: Mapping[str, Any],
    *,
    keep_last: int | None = None,
) -> Path:
    """Write ``<root>/step_<step>/`` atomically and point ``<root>/latest`` at it.

    ``files`` maps a file stem (``"model"``) to its tensors; ``config`` goes to ``config.json``
    (it must be JSON-serialisable; ``step`` is added). ``keep_last`` prunes older step folders
    once the new one is in place. Returns the checkpoint folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    name = step_name(step)
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    cfg = dict(config)
    cfg["step"] = int(step)
    try:
        text = json.dumps(cfg, indent=2, sort_keys=True, allow_nan=True)
    except TypeError as err:
        raise InputError(f"checkpoint config: expected JSON-serialisable values ({err})") from None
    try:
        tmp.mkdir()
        for stem, tensors in files.items():
            _write_durable(tmp / f"{stem}.safetensors", _serialize(tensors))
        _write_durable(tmp / CONFIG_FILE, text.encode())
        fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. a finished run saved again): swap
            old = root / f".tmp-old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic_write(root / LATEST_FILE, (name + "\n").encode())
    if keep_last is not None:
        steps = sorted(_step_dirs(root), key=lambda p: int(_STEP_RE.match(p.name).group(1)))  # type: ignore[union-attr]
        for p in steps[: max(0, len(steps) - keep_last)]:
            if p != final:
                shutil.rmtree(p, ignore_errors=True)
    return final


def _step_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and _STEP_RE.match(p.name)]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``root`` (``None`` when there is none)."""
    root = Path(root)
    if not root.is_dir():
        return None
    pointer = root / LATEST_FILE
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    complete = [p for p in _step_dirs(root) if (p / CONFIG_FILE).is_file()]
    if not complete:
        return None
    return max(complete, key=lambda p: int(_STEP_RE.match(p.name).group(1)))  # type: ignore[union-attr]


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from either that folder or a run folder (its newest checkpoint)."""
    p = Path(path)
    if (p / CONFIG_FILE).is_file():
        return p
    found = latest_checkpoint(p)
    if found is None:
        raise InputError(
            f"checkpoint: expected a checkpoint folder (with {CONFIG_FILE}) or a run folder "
            f"holding one, got {str(p)!r}"
        )
    return found


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (folder or run folder) with safetensors and json only."""
    folder = resolve_checkpoint(path)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"checkpoint: cannot read {folder / CONFIG_FILE}: {err}") from None
    if not isinstance(config, dict) or "step" not in config:
        raise InputError(f"checkpoint: {folder / CONFIG_FILE} is not a polyfold checkpoint config")
    tensors: dict[str, dict[str, Tensor]] = {}
    for f in sorted(folder.glob("*.safetensors")):
        try:
            tensors[f.stem] = safetensors.torch.load_file(str(f), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise InputError(f"checkpoint: cannot read {f}: {err}") from None
    return Checkpoint(folder, config, tensors)


def load_weights(
    path: str | Path, model: torch.nn.Module | None = None, *, ema: bool = True
) -> dict[str, Tensor]:
    """The model weights of a checkpoint (the EMA weights when ``ema`` and present).

    Loads them into ``model`` when one is given (strictly: keys must match).
    """
    folder = resolve_checkpoint(path)
    name = "ema" if ema and (folder / "ema.safetensors").is_file() else "model"
    weights: dict[str, Tensor] = safetensors.torch.load_file(
        str(folder / f"{name}.safetensors"), device="cpu"
    )
    if model is not None:
        model.load_state_dict(weights)
    return weights
