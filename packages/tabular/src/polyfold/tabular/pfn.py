"""polyfold's own prior-fitted network: a small transformer that classifies in context.

A prior-fitted network (PFN, as in TabPFN) is trained once, on many synthetic classification
tasks drawn from a prior, to predict the labels of query rows given labelled context rows; on a
new table it then classifies with no training at all, in one forward pass.

* **Model** (:class:`PFN`). Each row (features zero-padded to ``max_features`` and scaled by
  ``max_features / d``, after standardisation with the *context's* mean and std) is embedded by
  a linear layer; context rows add an embedding of their label. Each layer: context rows attend
  to context rows, query rows attend to context rows only (so queries never see each other),
  then a feed-forward block (pre-norm residuals). A linear head gives ``max_classes`` logits
  per query row; classes absent from the context are masked to -inf in training.
* **Prior** (:func:`sample_task`). A random structural causal model in the spirit of TabPFN's
  MLP prior: a random MLP with Gaussian (or uniform) root causes, random depth, width and
  activation and per-node noise; features are a random subset of its nodes, the label is
  another node cut into 2..``max_classes`` classes at random quantiles. A share of the tasks
  are linear ones. Features get random monotone warps and random duplicated columns.
* **Training** (:func:`train_prior`): core's :class:`~polyfold.core.train.Trainer` (AdamW,
  warm-up and cosine decay, clipping, atomic checkpoints with exact resume) on
  :class:`PriorTasks`, cross-entropy on query rows (:func:`prior_loss`).
  ``polyfold-tabular train-prior`` runs it and writes ``pfn.safetensors`` + ``pfn.json``.
* **Backbone** (:class:`PFNBackbone`): TabEBM's classifier when the checkpoint ships with the
  package (``polyfold/tabular/weights/``). Weights are read with safetensors only.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import Dataset

from polyfold.core.errors import InputError
from polyfold.core.export import load_model, read_card, register_model, save_model
from polyfold.core.outputs import write_text
from polyfold.core.train import Trainer, atomic_write, latest_checkpoint
from polyfold.core.train.data import mix_seed
from polyfold.tabular.datasets import load_dataset
from polyfold.tabular.encoding import TableEncoder
from polyfold.tabular.splits import stratified_indices

__all__ = [
    "PFN",
    "PFNBackbone",
    "PFNConfig",
    "PriorTasks",
    "check_resumable",
    "default_checkpoint",
    "heldout_accuracy",
    "load_pfn",
    "prior_loss",
    "sample_task",
    "save_pfn",
    "train_prior",
    "write_model_card",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class PFNConfig:
    """The PFN's hyperparameters (stored in the checkpoint's JSON config)."""

    max_features: int = 64
    max_classes: int = 10
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int = 256


class _Layer(nn.Module):
    def __init__(self, cfg: PFNConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = nn.MultiheadAttention(cfg.d_model, cfg.n_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model)
        )

    def forward(self, ctx: torch.Tensor, qry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.norm1(ctx)
        qry = self.query(c, qry)
        ctx = ctx + self.attn(c, c, c, need_weights=False)[0]
        ctx = ctx + self.ff(self.norm2(ctx))
        return ctx, qry

    def query(self, c: torch.Tensor, qry: torch.Tensor) -> torch.Tensor:
        """The query rows' update given the layer's normalised context ``c``."""
        q = self.norm1(qry)
        qry = qry + self.attn(q, c, c, need_weights=False)[0]
        out: torch.Tensor = qry + self.ff(self.norm2(qry))
        return out


class PFN(nn.Module):
    """In-context classifier: ``forward(x_ctx, y_ctx, x_qry) -> (T, Q, max_classes)`` logits."""

    def __init__(self, cfg: PFNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_x = nn.Linear(cfg.max_features, cfg.d_model)
        self.embed_y = nn.Embedding(cfg.max_classes, cfg.d_model)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.max_classes)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PFN:
        """Build from ``asdict(cfg)`` (how :func:`polyfold.core.export.load_model` rebuilds it)."""
        return cls(PFNConfig(**config))

    def _features(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        z = ((x - mean) / std).clamp(-100, 100) * math.sqrt(self.cfg.max_features / d)
        return nn.functional.pad(z, (0, self.cfg.max_features - d))

    def forward(
        self, x_ctx: torch.Tensor, y_ctx: torch.Tensor, x_qry: torch.Tensor
    ) -> torch.Tensor:
        """``x_ctx`` (T, N, d), ``y_ctx`` (T, N) int64, ``x_qry`` (T, Q, d)."""
        d = x_ctx.shape[-1]
        if d > self.cfg.max_features:
            raise InputError(
                f"PFN: {d} features; this network takes at most {self.cfg.max_features}"
            )
        mean = x_ctx.mean(dim=1, keepdim=True)
        std = x_ctx.std(dim=1, keepdim=True, unbiased=False).clamp_min(1e-6)
        ctx = self.embed_x(self._features(x_ctx, mean, std)) + self.embed_y(y_ctx)
        qry = self.embed_x(self._features(x_qry, mean, std))
        for layer in self.layers:
            ctx, qry = layer(ctx, qry)
        logits: torch.Tensor = self.head(self.norm(qry))
        return logits

    def context_cache(self, x_ctx: torch.Tensor, y_ctx: torch.Tensor) -> dict[str, Any]:
        """What the query path needs from a context (queries never change the context)."""
        if x_ctx.shape[-1] > self.cfg.max_features:
            raise InputError(
                f"PFN: {x_ctx.shape[-1]} features; this network takes at most "
                f"{self.cfg.max_features}"
            )
        mean = x_ctx.mean(dim=1, keepdim=True)
        std = x_ctx.std(dim=1, keepdim=True, unbiased=False).clamp_min(1e-6)
        ctx = self.embed_x(self._features(x_ctx, mean, std)) + self.embed_y(y_ctx)
        normed = []
        for layer in self.layers:
            assert isinstance(layer, _Layer)
            c = layer.norm1(ctx)
            normed.append(c)
            ctx = ctx + layer.attn(c, c, c, need_weights=False)[0]
            ctx = ctx + layer.ff(layer.norm2(ctx))
        return {"mean": mean, "std": std, "normed": normed}

    def query_logits(self, cache: dict[str, Any], x_qry: torch.Tensor) -> torch.Tensor:
        """Logits of query rows against a :meth:`context_cache` (same as :meth:`forward`)."""
        qry = self.embed_x(self._features(x_qry, cache["mean"], cache["std"]))
        for layer, c in zip(self.layers, cache["normed"], strict=True):
            assert isinstance(layer, _Layer)
            qry = layer.query(c, qry)
        logits: torch.Tensor = self.head(self.norm(qry))
        return logits


# --------------------------------------------------------------------------------------------
# The prior: random SCM / MLP classification tasks
# --------------------------------------------------------------------------------------------


def _activation(gen: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    acts: list[Callable[[torch.Tensor], torch.Tensor]] = [
        torch.tanh,
        torch.relu,
        nn.functional.leaky_relu,
        torch.sin,
        lambda v: v,
        nn.functional.elu,
    ]
    return acts[int(torch.randint(len(acts), (1,), generator=gen))]


def sample_task(
    n_rows: int, n_features: int, n_classes: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One synthetic classification task: ``(X (n_rows, n_features), y (n_rows,))``.

    A random MLP-shaped structural causal model (see the module docstring); ``y`` holds every
    class 0..n_classes-1 at least once when ``n_rows >= n_classes``.
    """

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    linear = float(rand(1)) < 0.15
    width = int(torch.randint(max(n_features, 4), 2 * n_features + 8, (1,), generator=gen))
    depth = 1 if linear else int(torch.randint(2, 5, (1,), generator=gen))
    n_roots = int(torch.randint(2, max(3, width // 2) + 1, (1,), generator=gen))
    noise_std = float(10 ** (rand(1) * 2 - 2.5))  # 0.003 .. 0.3
    h = randn(n_rows, n_roots) if float(rand(1)) < 0.7 else rand(n_rows, n_roots) * 2 - 1
    nodes = []
    act = _activation(gen)
    for _ in range(depth):
        w = randn(h.shape[1], width) / math.sqrt(h.shape[1])
        w = w * (rand(h.shape[1], width) < 0.7)  # sparse causal edges
        h = h @ w + noise_std * randn(n_rows, width)
        if not linear:
            h = act(h)
        nodes.append(h)
    pool = torch.cat(nodes, dim=1)
    perm = torch.randperm(pool.shape[1], generator=gen)
    target_node = pool[:, perm[0]]
    feats = pool[:, perm[1 : 1 + n_features]]
    while feats.shape[1] < n_features:  # not enough nodes: duplicate with noise
        extra = feats[:, torch.randint(feats.shape[1], (1,), generator=gen)]
        feats = torch.cat([feats, extra + 0.1 * randn(n_rows, 1)], dim=1)
    feats = feats + 0.01 * randn(*feats.shape)
    if float(rand(1)) < 0.3:  # monotone warps of some columns
        warp = rand(n_features) < 0.5
        feats[:, warp] = torch.sign(feats[:, warp]) * feats[:, warp].abs().pow(
            0.5 + rand(int(warp.sum()))
        )
    # the label: the target node cut at random quantiles into n_classes bins
    cuts = torch.sort(rand(n_classes - 1)).values
    thresholds = torch.quantile(target_node, cuts)
    y = torch.bucketize(target_node.contiguous(), thresholds)
    if float(rand(1)) < 0.5:  # random class order
        y = torch.randperm(n_classes, generator=gen)[y]
    feats = feats * (rand(1, n_features) * 4 + 0.25) + randn(1, n_features) * 2
    return feats, y


PriorBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]
"""``(x_ctx, y_ctx, x_qry, y_qry, n_classes)`` of a batch of prior tasks."""


def _batch(gen: torch.Generator, cfg: PFNConfig, tasks: int, max_rows: int) -> PriorBatch:
    n_rows = int(torch.randint(24, max_rows + 1, (1,), generator=gen))
    d = int(torch.randint(1, cfg.max_features + 1, (1,), generator=gen))
    if float(torch.rand(1, generator=gen)) < 0.5:
        d = min(d, int(torch.randint(1, 16, (1,), generator=gen)))
    k = (
        2
        if float(torch.rand(1, generator=gen)) < 0.5
        else int(torch.randint(2, cfg.max_classes + 1, (1,), generator=gen))
    )
    xs, ys = zip(*(sample_task(n_rows, d, k, gen) for _ in range(tasks)), strict=True)
    X, y = torch.stack(xs), torch.stack(ys)
    n_ctx = int(torch.randint(max(4, n_rows // 5), n_rows - 4 + 1, (1,), generator=gen))
    return X[:, :n_ctx], y[:, :n_ctx], X[:, n_ctx:], y[:, n_ctx:], k


class PriorTasks(Dataset[PriorBatch]):
    """The prior as a map-style dataset: item ``i`` is the ``i``-th training batch.

    Batch ``i`` is drawn from a generator seeded by ``(seed, i)`` alone, so any step's batch can
    be drawn again without the ones before it: what the Trainer's exact resume needs.
    """

    def __init__(
        self, cfg: PFNConfig, *, length: int, seed: int, tasks_per_step: int, max_rows: int
    ) -> None:
        self.cfg = cfg
        self.length = length
        self.seed = seed
        self.tasks_per_step = tasks_per_step
        self.max_rows = max_rows

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> PriorBatch:
        gen = torch.Generator().manual_seed(mix_seed(self.seed, index))
        return _batch(gen, self.cfg, self.tasks_per_step, self.max_rows)


def _only_item(items: list[PriorBatch]) -> PriorBatch:
    """The Trainer's collate: each step reads one ready-made batch of tasks."""
    (batch,) = items
    return batch


def prior_loss(model: nn.Module, batch: PriorBatch, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy on the query rows, logits of classes absent from the task masked out."""
    x_c, y_c, x_q, y_q, k = batch
    logits = model(x_c, y_c, x_q)
    n_logits = logits.shape[-1]
    absent = torch.arange(n_logits, device=logits.device) >= k
    logits = logits.masked_fill(absent, float("-inf"))
    return nn.functional.cross_entropy(logits.reshape(-1, n_logits), y_q.reshape(-1))


SETTINGS_FILE = "train_prior.json"


def check_resumable(
    out_dir: Path, settings: dict[str, Any], *, spell: Callable[[str], str] = str
) -> None:
    """Refuse to resume a run in ``out_dir`` that was started with other ``settings``.

    ``spell`` turns a setting's name into what the user typed (a CLI option, say).
    """
    path = Path(out_dir) / SETTINGS_FILE
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot be read ({err})") from None
    for name, value in settings.items():
        if name in saved and saved[name] != value:
            raise InputError(
                f"{spell(name)}: the run in {out_dir} was started with {saved[name]!r}, not "
                f"{value!r}; resume with the same value (it shapes the learning-rate schedule "
                "and the prior's batches) or choose another folder"
            )


def _history(out_dir: Path) -> list[dict[str, Any]]:
    """The Trainer's metric rows (``metrics.csv``) as ``{step, loss, seconds}``, the seconds
    summed from each row's step rate (so they span every session of a resumed run)."""
    path = out_dir / "metrics.csv"
    if not path.is_file():
        return []
    history, seconds, last = [], 0.0, 0
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            step, rate = int(row["step"]), float(row["steps_per_s"])
            seconds += (step - last) / rate if rate > 0 else 0.0
            last = step
            history.append({"step": step, "loss": float(row["loss"]), "seconds": seconds})
    return history


def train_prior(
    cfg: PFNConfig,
    *,
    steps: int,
    out_dir: str | Path,
    seed: int = 0,
    tasks_per_step: int = 8,
    max_rows: int = 160,
    lr: float = 3e-4,
    log_every: int = 100,
    checkpoint_every: int | None = 1000,
    resume: bool = False,
    device: str | None = "cpu",
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    spell: Callable[[str], str] = str,
) -> tuple[PFN, dict[str, Any]]:
    """Train a :class:`PFN` on ``steps`` batches of prior tasks with core's :class:`Trainer`.

    AdamW (weight decay 1e-4), linear warm-up over ``steps // 50`` steps then cosine decay,
    gradient norm clipped to 1, no EMA, float32. Checkpoints go to ``out_dir`` every
    ``checkpoint_every`` steps and at the end; ``resume=True`` continues the newest one there
    (bit for bit as if never stopped), and refuses a run started with other settings (named
    through ``spell``, e.g. as CLI options); ``log`` gets "resuming from step N". Returns
    the model (in eval mode) and ``{"history": [{step, loss, seconds}], "seconds": total}``.
    """
    out_dir = Path(out_dir)
    settings = {
        "steps": steps,
        "seed": seed,
        "tasks_per_step": tasks_per_step,
        "max_rows": max_rows,
        "lr": lr,
        "config": asdict(cfg),
    }
    if resume:
        check_resumable(out_dir, settings, spell=spell)
    torch.manual_seed(seed)
    model = PFN(cfg)
    data = PriorTasks(
        cfg, length=steps, seed=seed, tasks_per_step=tasks_per_step, max_rows=max_rows
    )
    trainer = Trainer(
        model,
        prior_loss,
        data,
        out_dir=out_dir,
        collate_fn=_only_item,
        model_config=asdict(cfg),
        data_card=None,
        max_steps=steps,
        batch_size=1,
        shuffle=False,
        seed=seed,
        lr=lr,
        weight_decay=1e-4,
        warmup_steps=max(1, steps // 50),
        grad_clip=1.0,
        ema_decay=None,
        mixed_precision=False,
        checkpoint_every=checkpoint_every,
        keep_last=2,
        log_every=log_every,
        device=device,
        quiet=quiet,
        tensorboard=False,
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"out_dir: cannot create {out_dir} ({err.strerror})") from None
    found = latest_checkpoint(out_dir) if resume else None
    if found is not None:
        trainer.load_checkpoint(found)
        if log is not None:
            log(f"resuming from step {trainer.step}")
    elif not resume and latest_checkpoint(out_dir) is not None:
        raise InputError(
            f"out_dir: {str(out_dir)!r} holds a training run already; pass resume=True to "
            "continue it or choose another folder"
        )
    atomic_write(out_dir / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
    trainer.fit(resume=False)
    model.eval()
    history = _history(out_dir)
    return model, {"history": history, "seconds": history[-1]["seconds"] if history else 0.0}


def heldout_accuracy(
    model: PFN, names: list[str], *, n_ctx: int = 100, seeds: tuple[int, ...] = (0, 1, 2)
) -> list[dict[str, Any]]:
    """Accuracy on real bundled tables: ``n_ctx`` stratified context rows, the rest (up to
    500) as queries; logistic regression and 5-NN fitted on the same rows for reference."""
    rows = []
    for name in names:
        table = load_dataset(name)
        Z = TableEncoder().fit_transform(table.X)
        classes, y = np.unique(table.y.to_numpy(), return_inverse=True)
        if Z.shape[1] > model.cfg.max_features or len(classes) > model.cfg.max_classes:
            continue
        for seed in seeds:
            rng = np.random.default_rng(seed)
            ctx = stratified_indices(y, n_ctx, rng)
            rest = np.setdiff1d(np.arange(len(y)), ctx)
            qry = rng.choice(rest, size=min(500, len(rest)), replace=False)
            with torch.no_grad():
                logits = model(
                    torch.as_tensor(Z[ctx], dtype=torch.float32)[None],
                    torch.as_tensor(y[ctx])[None],
                    torch.as_tensor(Z[qry], dtype=torch.float32)[None],
                )[0, :, : len(classes)]
            pred = logits.argmax(1).numpy()
            scaler = StandardScaler().fit(Z[ctx])
            out = {
                "dataset": name,
                "seed": seed,
                "pfn": float(balanced_accuracy_score(y[qry], pred)),
            }
            for key, clf in (
                ("logreg", LogisticRegression(max_iter=2000)),
                ("knn", KNeighborsClassifier(5)),
            ):
                clf.fit(scaler.transform(Z[ctx]), y[ctx])
                out[key] = float(
                    balanced_accuracy_score(y[qry], clf.predict(scaler.transform(Z[qry])))
                )
            rows.append(out)
    return rows


# --------------------------------------------------------------------------------------------
# Checkpoints (safetensors + JSON) and the TabEBM backbone
# --------------------------------------------------------------------------------------------


register_model(PFN, name="tabular.PFN")


def save_pfn(model: PFN, out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``pfn.safetensors`` and ``pfn.json`` (core model card: config, and ``meta`` as
    the card) into ``out_dir`` through :func:`polyfold.core.export.save_model`."""
    weights = save_model(model, Path(out_dir) / "pfn", config=asdict(model.cfg), card=meta)
    return weights, weights.with_suffix(".json")


def write_model_card(config_path: Path) -> Path:
    """Write ``MODEL_CARD.md`` beside a checkpoint's ``pfn.json`` from what that JSON records."""
    record = read_card(config_path)
    meta, cfg = record["card"], record["config"]
    params = sum(v.numel() for v in PFN(PFNConfig(**cfg)).state_dict().values())
    history = meta.get("history", [])
    last = history[-1]["loss"] if history else float("nan")
    first = history[0]["loss"] if history else float("nan")
    lines = [
        "# polyfold-tabular prior-fitted network (pfn.safetensors)",
        "",
        "A small transformer that classifies in context (labelled context rows, query rows "
        'attending to them), used as TabEBM\'s classifier (`backbone="pfn"`). '
        "Code: `polyfold.tabular.pfn`.",
        "",
        f"- **architecture**: {cfg['n_layers']} layers, d_model {cfg['d_model']}, "
        f"{cfg['n_heads']} heads, feed-forward {cfg['d_ff']}; up to {cfg['max_features']} "
        f"features and {cfg['max_classes']} classes; {params:,} parameters (float32).",
        f"- **training command**: `{meta.get('command')}` "
        f"(polyfold-tabular {meta.get('polyfold_tabular_version')}, one CPU thread)",
        f"- **steps**: {meta.get('steps')} AdamW steps of {meta.get('tasks_per_step')} tasks "
        f"(up to {meta.get('max_rows')} rows each), lr 3e-4 with warm-up and cosine decay, "
        f"seed {meta.get('seed')}; {meta.get('train_seconds', float('nan')) / 60:.0f} minutes; "
        f"query cross-entropy {first:.3f} (first {history[0]['step'] if history else 0} steps) "
        f"-> {last:.3f} (last).",
        "- **prior**: `polyfold.tabular.pfn.sample_task`: random MLP-shaped structural causal "
        "models (random "
        "depth, width, activation, sparse edges and noise), features are random nodes, the "
        "label is another node cut at random quantiles into 2-10 classes; 15% linear tasks; "
        "random monotone warps, scales and shifts of the features.",
        "- **training data**: synthetic prior tasks only; no real dataset was seen in training.",
        "- **held-out accuracy**: balanced accuracy on the bundled real tables, 100 stratified "
        "context rows and up to 500 query rows, mean over seeds 0-2; logistic regression and "
        "5-NN fitted on the same 100 rows for reference (higher is better; chance is 1 / the "
        "number of classes):",
        "",
        "| dataset | PFN | logistic regression | 5-NN |",
        "|---|---|---|---|",
    ]
    by: dict[str, list[dict[str, Any]]] = {}
    for row in meta.get("heldout", []):
        by.setdefault(row["dataset"], []).append(row)
    means = {"pfn": [], "logreg": [], "knn": []}  # type: dict[str, list[float]]
    for name, rows in by.items():
        vals = {k: sum(r[k] for r in rows) / len(rows) for k in means}
        for k in means:
            means[k].append(vals[k])
        lines.append(f"| {name} | {vals['pfn']:.3f} | {vals['logreg']:.3f} | {vals['knn']:.3f} |")
    if by:
        avg = {k: sum(v) / len(v) for k, v in means.items()}
        lines.append(f"| **mean** | {avg['pfn']:.3f} | {avg['logreg']:.3f} | {avg['knn']:.3f} |")
    lines += [
        "",
        "- **format**: `pfn.safetensors` (weights, read with safetensors only, never unpickled) "
        "and `pfn.json` (a `polyfold.core.export` card: model class, hyperparameters, "
        "training record).",
        "- **licence**: Apache-2.0, like polyfold-tabular.",
        "",
    ]
    card = config_path.parent / "MODEL_CARD.md"
    write_text(card, "\n".join(lines))
    return card


def default_checkpoint() -> Path | None:
    """The checkpoint shipped in the package, or None when it does not ship."""
    path = WEIGHTS_DIR / "pfn.safetensors"
    return path if path.is_file() and (WEIGHTS_DIR / "pfn.json").is_file() else None


def load_pfn(weights: Path | None = None) -> PFN:
    """A :class:`PFN` from ``weights`` (``pfn.safetensors`` with ``pfn.json`` beside it), read
    by :func:`polyfold.core.export.load_model` (safetensors and JSON only)."""
    weights = weights or default_checkpoint()
    if weights is None:
        raise InputError(
            "backbone 'pfn': no checkpoint ships with this polyfold-tabular; train one with "
            "`polyfold-tabular train-prior` and pass its path, or use backbone='mlp'"
        )
    model = load_model(weights).model
    if not isinstance(model, PFN):
        raise InputError(f"PFN checkpoint: {weights} holds a {type(model).__name__}, not a PFN")
    model.requires_grad_(False)
    return model


class PFNBackbone:
    """TabEBM's classifier from the in-house PFN: in-context, nothing trained per class."""

    name = "pfn"

    def __init__(self, weights: str | Path | None = None) -> None:
        self.model = load_pfn(Path(weights) if weights is not None else None)

    def fit(self, X: torch.Tensor, y: torch.Tensor, *, seed: int) -> Callable[..., torch.Tensor]:
        model = self.model.to(X.device)
        with torch.no_grad():
            cache = model.context_cache(X.unsqueeze(0).float(), y.unsqueeze(0))

        def logits_fn(x: torch.Tensor) -> torch.Tensor:
            return model.query_logits(cache, x.unsqueeze(0).float())[0, :, :2]

        return logits_fn
