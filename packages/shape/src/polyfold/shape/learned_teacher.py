"""The learned 2D teacher: a small diffusion model of renders of the procedural shapes.

Training data (:func:`render_dataset`): ``per_class`` procedural shapes of each class (the
training split, dataset seed 0), each rendered from ``views`` random cameras (elevation and
azimuth uniform on the ranges distillation draws from) with
:func:`~polyfold.shape.volrender.render` as the 2-channel ``[-1, 1]`` pictures of
:meth:`Render.image` that the exact teacher also sees. :func:`fit_teacher` trains a
:class:`~polyfold.shape.teacher_net.TeacherUNet` on them with core's
:func:`~polyfold.core.losses.dsm.dsm_loss` (``eps`` prediction, the VP-cosine path of the exact
teacher) and :class:`~polyfold.core.train.Trainer`, dropping the class to the null label with
probability ``p_uncond`` (classifier-free guidance); the renders are cached in the run folder
(``OUT/renders.safetensors``), so a resumed run does not render again. The model file is core's
(``save_model``), its card records the command, data, steps and the held-out denoising loss
(:func:`heldout_loss`: held-out shapes of dataset seed 1, fixed times and noise).

:class:`LearnedTeacher` has the exact teacher's interface (``path``, ``classes``,
``check_class``, ``denoiser(cls, cams, guidance=...)``), so distillation runs on it unchanged;
its denoiser is the network through core's :func:`~polyfold.core.denoiser.as_denoiser`, with
core's :func:`~polyfold.core.guidance.cfg` for ``guidance != 1``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from polyfold.core.denoiser import Denoiser, as_denoiser
from polyfold.core.errors import InputError, check_int
from polyfold.core.guidance import cfg as cfg_guidance
from polyfold.core.guidance.cfg import drop_labels
from polyfold.core.losses.dsm import dsm_loss
from polyfold.core.paths import VPCosine
from polyfold.shape.procshapes import check_classes, dataset
from polyfold.shape.teacher_net import TeacherUNet
from polyfold.shape.volrender import Cameras, random_cameras, render

__all__ = [
    "SHIPPED_TEACHER",
    "LearnedTeacher",
    "TeacherConfig",
    "cached_renders",
    "fit_teacher",
    "heldout_loss",
    "load_teacher",
    "render_dataset",
]

#: the shipped learned teacher (weights/<name>.safetensors + .json; its card in the README)
SHIPPED_TEACHER = Path(__file__).parent / "weights" / "procshapes-teacher2d"
PATH = VPCosine()  # the exact teacher's default path
CACHE = "renders.safetensors"


@dataclass
class TeacherConfig:
    """Data, network and training settings of the learned teacher."""

    classes: list[str] = field(default_factory=lambda: ["chair", "table", "mug", "vase"])
    per_class: int = 64
    views: int = 8
    res: int = 24
    samples: int = 24
    beta: float = 0.01
    elevation: tuple[float, float] = (10.0, 40.0)
    width: int = 16
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    p_uncond: float = 0.1
    seed: int = 0

    def check(self) -> TeacherConfig:
        self.classes = check_classes(self.classes)
        check_int("--per-class", self.per_class, 1)
        check_int("--views", self.views, 1)
        check_int("--steps", self.steps, 1)
        check_int("--batch-size", self.batch_size, 1)
        if not 0 <= self.p_uncond < 1:
            raise InputError(f"--p-uncond: expected a number in [0, 1), got {self.p_uncond}")
        TeacherUNet(self.classes, res=self.res, width=self.width)  # checks res and width
        return self

    @property
    def render_kw(self) -> dict[str, Any]:
        return {"res": self.res, "samples": self.samples, "beta": self.beta}

    def data_key(self) -> dict[str, Any]:
        """What the cached renders depend on."""
        keys = ("classes", "per_class", "views", "res", "samples", "beta", "elevation", "seed")
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k in keys
        }


def render_dataset(
    cfg: TeacherConfig,
    *,
    split_seed: int = 0,
    per_class: int | None = None,
    views: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Renders ``(N, 2, res, res)``, labels ``(N,)`` (index in ``cfg.classes``) and camera
    embeddings ``(N, 4)`` of ``per_class`` procedural shapes per class (dataset seed
    ``split_seed``), ``views`` random cameras each (seeded by ``cfg.seed`` and ``split_seed``)."""
    per_class = per_class or cfg.per_class
    views = views or cfg.views
    shapes = dataset(cfg.classes, per_class, seed=split_seed)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + split_seed)
    images, labels, cams = [], [], []
    for i, s in enumerate(shapes):
        c = random_cameras(views, elevation=cfg.elevation, generator=gen)
        with torch.no_grad():
            images.append(render(s, c, **cfg.render_kw).image().float())
        labels.append(torch.full((views,), cfg.classes.index(s.cls)))
        cams.append(c.embedding())
        if progress is not None:
            progress(i + 1, len(shapes))
    return torch.cat(images), torch.cat(labels), torch.cat(cams)


def cached_renders(
    out: Path, cfg: TeacherConfig, progress: Callable[[int, int], None] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The training renders from ``out/renders.safetensors`` if made with the same data
    settings, else rendered and written there."""
    from polyfold.core.outputs import write_bytes

    path = out / CACHE
    key = json.dumps(cfg.data_key(), sort_keys=True)
    if path.exists():
        with safetensors.safe_open(str(path), "pt") as f:
            same = (f.metadata() or {}).get("data") == key
        if same:
            d = safetensors.torch.load_file(str(path))
            return d["images"], d["labels"], d["cameras"]
    x, y, c = render_dataset(cfg, progress=progress)
    data = {"images": x.contiguous(), "labels": y.contiguous(), "cameras": c.contiguous()}
    write_bytes(path, safetensors.torch.save(data, metadata={"data": key}))
    return x, y, c


def _loss(
    net: Callable[..., Tensor],
    batch: list[Tensor],
    gen: torch.Generator | None,
    null: int,
    p_uncond: float = 0.0,
) -> Tensor:
    """Core's DSM loss (``eps``) of ``net`` on a batch of (renders, labels, cameras), labels
    dropped to ``null`` with probability ``p_uncond``."""
    x, y, cam = batch
    if p_uncond > 0:
        y = drop_labels(y, p_uncond, null, gen)
    cond = {"label": y, "camera": cam}
    return dsm_loss(net, x, path=PATH, prediction="eps", cond=cond, generator=gen)


def heldout_loss(
    model: TeacherUNet, data: tuple[Tensor, Tensor, Tensor], *, draws: int = 4, seed: int = 0
) -> float:
    """The conditional ``eps`` denoising loss (MSE; predicting zero scores 1) on ``data``,
    averaged over ``draws`` fixed draws of time and noise per image."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        losses = [float(_loss(model, list(data), gen, model.null)) for _ in range(draws)]
    return sum(losses) / len(losses)


def fit_teacher(
    out: Path,
    cfg: TeacherConfig,
    *,
    data: tuple[Tensor, Tensor, Tensor] | None = None,
    resume: bool = False,
    progress: Callable[[int, float, float], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train the learned teacher in ``out/run`` on ``data`` (default: the renders cached in
    ``out``, :func:`cached_renders`); write ``out/model`` (returns the weights' path and the
    card)."""
    from polyfold.core.export import save_model
    from polyfold.core.train import Trainer
    from polyfold.core.train.checkpoint import load_weights

    cfg.check()
    x, y, cam = data if data is not None else cached_renders(out, cfg)
    torch.manual_seed(cfg.seed)
    model = TeacherUNet(cfg.classes, res=cfg.res, width=cfg.width, render=cfg.render_kw)
    null, p = model.null, cfg.p_uncond
    trainer = Trainer(
        model,
        lambda m, batch, g: _loss(m, batch, g, null, p),
        TensorDataset(x, y, cam),
        out_dir=out / "run",
        model_config=model.config(),
        data_card="procshapes",
        max_steps=cfg.steps,
        batch_size=min(cfg.batch_size, len(x)),
        lr=cfg.lr,
        warmup_steps=min(100, cfg.steps // 10),
        ema_decay=0.999 if cfg.steps >= 1000 else 0.99,
        checkpoint_every=max(1, cfg.steps // 5),
        keep_last=2,
        seed=cfg.seed,
        quiet=progress is None,
        device="cpu",
    )
    result = trainer.fit(resume=resume, progress=progress)
    load_weights(out / "run", model, ema=True)
    model.eval()
    held = render_dataset(cfg, split_seed=1, per_class=4, views=4)
    card = {
        "data_card": "procshapes",
        "data_source": {**cfg.data_key(), "train_images": len(x)},
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "classes": cfg.classes,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "path": "vp_cosine",
        "prediction": "eps",
        "metrics": {
            "train_loss": float(result.loss) if result.loss is not None else None,
            "heldout_loss": heldout_loss(model, held),
            "heldout": "4 shapes per class of dataset seed 1, 4 random views each, 4 draws",
        },
    }
    path = save_model(model, out / "model", config=model.config(), card=card)
    return path, card


class LearnedTeacher:
    """A trained :class:`TeacherUNet` with the exact teacher's interface (see the module
    docstring); ``render_kw`` are the renderer settings its training renders used."""

    def __init__(self, model: TeacherUNet, card: dict[str, Any] | None = None) -> None:
        if not isinstance(model, TeacherUNet):
            raise InputError(f"model: expected a TeacherUNet, got {type(model).__name__}")
        self.model = model.eval().requires_grad_(False)
        self.card = dict(card or {})
        self.path = PATH
        self.render_kw = dict(model.render) or {"res": model.res}

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    def check_class(self, cls: str) -> str:
        if cls not in self.model.classes:
            raise InputError(
                f"--class: unknown class {cls!r} for this teacher; "
                f"expected one of {', '.join(self.model.classes)}"
            )
        return cls

    def denoiser(self, cls: str, cams: Cameras, *, guidance: float = 1.0) -> Denoiser:
        """The network's denoiser of class ``cls`` at the views ``cams`` (CFG with
        ``guidance``: ``eps_u + guidance (eps_c - eps_u)``, the null label for ``eps_u``)."""
        if not isinstance(cams, Cameras):
            raise InputError(f"cams: expected Cameras, got {type(cams).__name__}")
        b, emb = len(cams), cams.embedding()
        label = torch.full((b,), self.model.classes.index(self.check_class(cls)))
        cond = {"label": label, "camera": emb}
        d = as_denoiser(self.model, self.path, prediction="eps", cond=cond)
        if guidance == 1.0:
            return d
        null = {"label": torch.full((b,), self.model.null), "camera": emb}
        return cfg_guidance(d, null, guidance)


def load_teacher(path: str | os.PathLike[str] | None = None) -> LearnedTeacher:
    """The learned teacher from a model file (default: the shipped one)."""
    from polyfold.core.export import load_model

    where = SHIPPED_TEACHER if path is None else Path(path)
    loaded = load_model(where)
    if not isinstance(loaded.model, TeacherUNet):
        raise InputError(f"--teacher-model {where}: not a learned 2D teacher (TeacherUNet)")
    return LearnedTeacher(loaded.model, loaded.card)
