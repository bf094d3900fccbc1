"""Training GDSS: denoising score matching with node masks through core's trainer, and checkpoints.

The loss is core's :func:`~polyfold.core.losses.dsm_loss` on the dict state
``{"x": nodes, "adj": adjacency}`` with one path per key (:class:`~polyfold.graph.sde.GraphSDE`),
one time ``t ~ U[eps, 1]`` per graph shared by both keys (GDSS's ``eps = 1e-5``), GDSS's noise
(masked node noise, symmetric zero-diagonal adjacency noise) and the ``"snr"`` weighting, which
makes each key's loss exactly GDSS's ``|| std * score + z ||^2``: the plain noise MSE for a VP
key (network output read as the noise), ``sigma^2 ||score_hat - score||^2`` for a VE key
(network output read as the score). Padding is excluded from the mean (GDSS sums over entries;
the per-entry mean only rescales each key's loss).

A shipped model is a :mod:`polyfold.core.export` pair ``<name>.safetensors`` (the EMA weights)
+ ``<name>.json`` (config: the network; card: the SDE, the node-count histogram of the training
graphs for sampling masks, the training command, steps, data card and metrics).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from polyfold.core import export
from polyfold.core.errors import InputError, reading
from polyfold.core.losses import dsm_loss
from polyfold.core.timesteps import Uniform
from polyfold.core.train import Trainer, load_weights
from polyfold.core.train.checkpoint import latest_checkpoint
from polyfold.graph._version import __version__
from polyfold.graph.models import PRESET_MODELS, GDSSConfig, GDSSScore
from polyfold.graph.sde import PRESETS, GraphSDE, graph_noise, mask_adj, mask_x, state_masks

__all__ = [
    "TRAIN_DEFAULTS",
    "GraphBatchDataset",
    "GraphModel",
    "degree_features",
    "gdss_loss",
    "load_model",
    "load_run",
    "node_count_histogram",
    "run_config",
    "save_model",
    "train_gdss",
]

#: GDSS's training hyperparameters per preset (lr, batch size, EMA, weight decay, clipping).
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "qm9": {"lr": 5e-3, "batch_size": 1024, "ema_decay": 0.999, "weight_decay": 1e-4},
    "zinc250k": {"lr": 5e-3, "batch_size": 1024, "ema_decay": 0.999, "weight_decay": 1e-4},
    "community_small": {"lr": 1e-2, "batch_size": 128, "ema_decay": 0.999, "weight_decay": 1e-4},
}


def degree_features(adj: Tensor, mask: Tensor, n_features: int) -> Tensor:
    """GDSS's ``init: deg`` node features: one-hot degree (clipped at ``n_features - 1``)."""
    deg = (adj > 0).sum(-1).clamp(max=n_features - 1)
    return mask_x(F.one_hot(deg, n_features).to(adj.dtype), mask)


class GraphBatchDataset(Dataset[dict[str, Tensor]]):
    """Map-style dataset of graphs: item ``i`` is ``{"x": (N, F), "adj": (N, N), "mask": (N,)}``.

    ``adj_scale`` multiplies the adjacency (bond order / 3 -> bond order for molecules).
    """

    def __init__(self, x: Tensor, adj: Tensor, mask: Tensor, adj_scale: float = 1.0) -> None:
        if x.ndim != 3 or adj.ndim != 3 or mask.ndim != 2:
            raise InputError(
                "graphs: expected x (G, N, F), adj (G, N, N), mask (G, N); got "
                f"{tuple(x.shape)}, {tuple(adj.shape)}, {tuple(mask.shape)}"
            )
        if len(x) == 0:
            raise InputError("graphs: expected at least one graph, got none")
        m = mask.bool()
        self.mask = m
        self.x = mask_x(x.float(), m)
        self.adj = mask_adj(adj.float() * adj_scale, m)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"x": self.x[i], "adj": self.adj[i], "mask": self.mask[i]}


def gdss_loss(
    model: Any, batch: dict[str, Tensor], generator: torch.Generator, sde: GraphSDE
) -> Tensor:
    """GDSS's DSM loss of one batch (see the module docstring)."""
    mask = batch["mask"]
    x0 = {"x": batch["x"], "adj": batch["adj"]}
    return dsm_loss(
        model,
        x0,
        path=sde.paths(),
        prediction=sde.predictions(),
        weighting="snr",
        mask=state_masks(mask),
        cond=mask,
        generator=generator,
        time_sampler=Uniform(t_min=sde.eps, t_max=1.0),
        noise=graph_noise(x0, mask, generator=generator),
    )


class _Loss:
    """Picklable ``(model, batch, generator) -> loss`` for the trainer."""

    def __init__(self, sde: GraphSDE) -> None:
        self.sde = sde

    def __call__(self, model: Any, batch: dict[str, Tensor], generator: torch.Generator) -> Tensor:
        return gdss_loss(model, batch, generator, self.sde)


def node_count_histogram(mask: Tensor) -> list[int]:
    """How many graphs have ``n`` nodes, for ``n = 0 .. N``."""
    counts = mask.bool().sum(1)
    return torch.bincount(counts, minlength=mask.shape[1] + 1).tolist()


@dataclass
class GraphModel:
    """A loaded GDSS model: networks, SDE system, node-count histogram and metadata."""

    model: GDSSScore
    sde: GraphSDE
    node_counts: list[int]
    meta: dict[str, Any]

    @property
    def max_nodes(self) -> int:
        return self.model.config.max_nodes

    @property
    def n_features(self) -> int:
        return self.model.config.n_features

    @property
    def kind(self) -> str:
        """``"molecule"`` or ``"graph"``."""
        return str(self.meta.get("kind", "graph"))


def train_gdss(
    graphs: Any,
    out_dir: str | Path,
    *,
    preset: str = "qm9",
    max_steps: int = 1000,
    resume: bool = True,
    config: GDSSConfig | None = None,
    sde: GraphSDE | None = None,
    data_card: str | None = None,
    quiet: bool = False,
    checkpoint_every: int = 200,
    init: str | Path | None = None,
    progress: Callable[[int, float, float], None] | None = None,
    run_info: dict[str, Any] | None = None,
    **options: Any,
) -> Trainer:
    """Train GDSS on ``graphs`` (``x``, ``adj``, ``mask`` attributes; adjacency in the data
    API's units) with core's :class:`~polyfold.core.train.Trainer` into ``out_dir``.

    ``preset`` picks the network, SDE and training defaults (``qm9``, ``zinc250k``,
    ``community_small``); ``options`` override trainer options (``lr``, ``batch_size``, ...).
    ``init`` starts a new run from the weights of a model pair (:func:`save_model`'s output),
    e.g. to continue a finished run with a fresh learning-rate schedule. ``progress`` replaces
    the trainer's own bar (:meth:`~polyfold.core.train.Trainer.fit`); ``run_info`` (e.g. the
    node-count histogram and kind) is kept in every checkpoint's config so that
    :func:`load_run` can sample from the run folder. Returns the trainer after ``fit``.
    """
    if preset not in PRESETS:
        raise InputError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    sde = sde or PRESETS[preset]
    n_feat, n_nodes = graphs.x.shape[-1], graphs.x.shape[1]
    config = config or replace(PRESET_MODELS[preset], n_features=n_feat, max_nodes=n_nodes)
    if (config.n_features, config.max_nodes) != (n_feat, n_nodes):
        raise InputError(
            f"graphs: expected (N, F) = ({config.max_nodes}, {config.n_features}) for the model, "
            f"got ({n_nodes}, {n_feat})"
        )
    data = GraphBatchDataset(graphs.x, graphs.adj, graphs.mask, sde.adj_scale)
    opts: dict[str, Any] = {**TRAIN_DEFAULTS.get(preset, {}), "grad_clip": 1.0}
    opts.update(
        lr_schedule="warmup_cosine",
        warmup_steps=min(100, max_steps // 10),
        min_lr_ratio=0.05,
        checkpoint_every=checkpoint_every,
        quiet=quiet,
        device="cpu",
    )
    opts.update(options)
    opts["batch_size"] = min(int(opts["batch_size"]), len(data))
    model = GDSSScore(config)
    if init is not None:
        start = load_model(init)
        if start.model.config != config or start.sde != sde:
            raise InputError(f"init: {str(init)!r} has another network or SDE than this run")
        model.load_state_dict(start.model.state_dict())
    model_cfg = {"model": config.to_dict(), "sde": sde.to_dict(), "preset": preset}
    if init is not None:
        model_cfg["init"] = {"from": str(init), "steps": int(start.meta.get("steps", 0))}
    if run_info is not None:
        model_cfg["run_info"] = dict(run_info)
    trainer = Trainer(
        model,
        _Loss(sde),
        data,
        out_dir=out_dir,
        max_steps=max_steps,
        model_config=model_cfg,
        data_card=data_card,
        **opts,
    )
    trainer.fit(resume=resume, progress=progress)
    return trainer


def save_model(
    run_dir: str | Path,
    out: str | Path,
    *,
    node_counts: Sequence[int],
    kind: str,
    data_card: str | None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Export a training run's EMA weights as ``<out>.safetensors`` + ``<out>.json``
    (:func:`polyfold.core.export.save_model`; the SDE, node counts and record go in the card)."""
    model, mcfg, cfg = _run_checkpoint(run_dir)
    card = {
        "polyfold_graph_version": __version__,
        "sde": mcfg["sde"],
        "preset": mcfg.get("preset"),
        "kind": kind,
        "node_counts": [int(c) for c in node_counts],
        "data_card": data_card,
        "steps": int(cfg.get("step", 0)) + int((mcfg.get("init") or {}).get("steps", 0)),
        "init": mcfg.get("init"),
        "command": cfg.get("command"),
        "hyperparameters": cfg.get("hyperparameters"),
        "metrics": metrics or {},
        **(extra or {}),
    }
    return export.save_model(model, out, config=mcfg["model"], card=card)


def run_config(run_dir: str | Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The newest checkpoint of a GDSS run folder: (its folder, the run's model config, the
    checkpoint config), without loading weights."""
    run = Path(run_dir)
    step_dir = latest_checkpoint(run) if run.is_dir() else None
    if step_dir is None:
        raise InputError(f"run_dir: {str(run)!r} holds no checkpoint")
    with reading(step_dir / "config.json", "run_dir"):
        cfg = json.loads((step_dir / "config.json").read_text(encoding="utf-8"))
    mcfg = cfg.get("model_config") if isinstance(cfg, dict) else None
    if not isinstance(mcfg, dict) or "model" not in mcfg or "sde" not in mcfg:
        raise InputError(f"run_dir: {str(step_dir)!r} is not a GDSS training checkpoint")
    return step_dir, mcfg, cfg


def _run_checkpoint(run_dir: str | Path) -> tuple[GDSSScore, dict[str, Any], dict[str, Any]]:
    """The newest checkpoint of a GDSS run folder: (network with its EMA weights, the run's
    model config, the checkpoint config)."""
    step_dir, mcfg, cfg = run_config(run_dir)
    model = GDSSScore.from_config(mcfg["model"])
    model.load_state_dict(load_weights(step_dir))
    return model, mcfg, cfg


def load_run(run_dir: str | Path) -> GraphModel:
    """A GDSS model straight from a training run folder: the newest checkpoint's EMA weights,
    with the node counts and kind that ``polyfold-graph train`` keeps in the run (no export)."""
    model, mcfg, cfg = _run_checkpoint(run_dir)
    info = mcfg.get("run_info")
    if not isinstance(info, dict) or not info.get("node_counts"):
        raise InputError(
            f"--run {run_dir}: the run keeps no node-count histogram (trained before it was "
            "recorded); export it with `polyfold-graph train --export` and sample with --model"
        )
    model.eval()
    sde = GraphSDE.from_dict(mcfg["sde"])
    meta = {
        "preset": mcfg.get("preset"),
        "kind": info.get("kind", "graph"),
        "data_card": info.get("data_card"),
        "steps": int(cfg.get("step", 0)) + int((mcfg.get("init") or {}).get("steps", 0)),
    }
    return GraphModel(model, sde, [int(c) for c in info["node_counts"]], meta)


def load_model(path: str | Path) -> GraphModel:
    """Load a GDSS model pair ``<name>.safetensors`` + ``<name>.json`` (safetensors and JSON
    only, through :func:`polyfold.core.export.load_model`)."""
    loaded = export.load_model(path)
    if not isinstance(loaded.model, GDSSScore):
        raise InputError(f"checkpoint: {str(path)!r} holds a {type(loaded.model).__name__}")
    card = loaded.card
    try:
        sde = GraphSDE.from_dict(card["sde"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"checkpoint: {str(path)!r} has no valid GDSS SDE ({err})") from None
    counts = [int(c) for c in card.get("node_counts", [])]
    if sum(counts) <= 0:
        counts = [0] * loaded.model.config.max_nodes + [1]
    return GraphModel(loaded.model, sde, counts, card)


def command_line() -> str:
    """The running command, for model cards."""
    return shlex.join([Path(sys.executable).name, *sys.argv])
