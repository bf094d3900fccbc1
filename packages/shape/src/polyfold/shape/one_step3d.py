"""A one-step shape generator distilled from a 2D teacher (SwiftBrush-style VSD, issue 24).

:class:`ShapeGenerator` maps a class and a noise vector ``z`` to an **M-SDF** (part 1's format,
:class:`~polyfold.shape.msdf.MSDF`: ``n`` local grids of ``k^3`` SDF values with centres and
scales) in ONE forward pass: class embedding and ``z`` -> MLP trunk -> for each grid, the trunk's
feature and the grid's fixed random code -> a shared decoder -> the grid's centre offset
(``reach * tanh``, at most ``reach`` per axis from its anchor), scale (``scale * exp(0.5 tanh)``)
and ``k^3`` value offsets. The anchors are ``n`` points spread on the sphere of ``radius``
(:func:`fibonacci_sphere`) moved with the starting blob's centre; the values are the starting
shape's SDF at the grid's (moving) nodes plus the offsets, and the decoder's last layer starts
small, so every ``z`` starts near its own starting shape, as per-shape distillation does:
``init="sphere"``, the sphere of ``radius``; ``init="blobs"``, a blob that is a fixed function
of ``z`` (centre ``0.1 z[:3]``, radius ``radius +- 0.08`` from ``z[3]``, ``0.05 / sqrt(8)``
times 8 fixed low-frequency sines weighted by ``z[4:12]``), the distribution of
several-particle distillation's independent random starts
(:func:`~polyfold.shape.distill3d.initial_shapes`), so different ``z`` start in different
basins. The shapes render through the renderer's batched M-SDF field
(:class:`~polyfold.shape.volrender.MSDFBatch`, the blend of :func:`~polyfold.shape.msdf.evaluate`
on core's ``local_grid_blend``) and mesh and save with part 1's tools
(:func:`~polyfold.shape.msdf.evaluate_volume`, :func:`~polyfold.shape.msdf.to_mesh`,
:func:`~polyfold.shape.msdf.save_msdf`).

:func:`train_one_step` trains it with no 3D data by core's
:func:`~polyfold.core.distill.one_step.one_step_distillation_step`: the "student" is the
generator followed by the differentiable renderer at random cameras drawn per step (from the
same camera pool as :func:`~polyfold.shape.distill3d.distill`), the prior is the teacher's
class-conditional denoiser at those views (CFG with ``guidance``), and with ``method="vsd"``
(SwiftBrush) the auxiliary is distillation's :class:`~polyfold.shape.distill3d.AuxNet` conditioned
on camera and class (the online score of the generator's class-conditional render distribution, as
SwiftBrush's auxiliary shares the prompt) or, with ``aux="teacher"``, a copy of the learned
teacher's network (ProlificDreamer's and SwiftBrush's auxiliary starts as the teacher), fitted
online to the generator's renders by core's
:func:`~polyfold.core.distill.one_step.fit_aux` (warmed up first on the initial renders);
``method="sds"`` drops it. Each step trains one class (cycling through ``classes``), ``batch``
shapes of it, ``views`` cameras each; the time range is annealed as in distillation; the eikonal
penalty of the local grids (:func:`msdf_eikonal`) is added to their values' gradient in the
same backward pass.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.distill.one_step import fit_aux, one_step_distillation_step
from polyfold.core.errors import InputError, check_int
from polyfold.core.export import register_model
from polyfold.shape.distill3d import (
    AuxNet,
    DistillConfig,
    _pool,
    annealed_t_max,
    check_schedule,
)
from polyfold.shape.msdf import BOUND, MSDF
from polyfold.shape.teachers import Teacher
from polyfold.shape.volrender import Cameras, MSDFBatch, msdf_field, render

__all__ = [
    "OneStepConfig",
    "OneStepResult",
    "ShapeGenerator",
    "fibonacci_sphere",
    "generate_msdfs",
    "msdf_eikonal",
    "render_error",
    "train_one_step",
]


def fibonacci_sphere(n: int, radius: float) -> Tensor:
    """``n`` nearly evenly spread points on the sphere of ``radius`` (the golden-angle spiral)."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    y = 1 - 2 * i / n
    r = (1 - y**2).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))
    return radius * torch.stack([r * phi.cos(), y, r * phi.sin()], -1)


@register_model("shape.ShapeGenerator")
class ShapeGenerator(nn.Module):
    """``(class labels (B,), z (B, z_dim)) -> (centres (B, n, 3), scales (B, n), values (B, n,
    k, k, k))``: one M-SDF per row in one pass (see the module docstring)."""

    def __init__(
        self,
        classes: list[str],
        *,
        z_dim: int = 16,
        width: int = 128,
        grids: int = 32,
        k: int = 5,
        radius: float = 0.3,
        scale: float = 0.15,
        reach: float = 0.25,
        init: str = "blobs",
        render: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not classes or len(set(classes)) != len(classes):
            raise InputError(f"classes: expected distinct class names, got {classes!r}")
        self.z_dim = check_int("z_dim", z_dim, 1)
        self.width = check_int("--width", width, 2)
        self.n = check_int("--grids", grids, 1)
        self.k = check_int("--k", k, 2)
        if not (radius > 0 and scale > 0 and reach >= 0):
            raise InputError("radius, scale: expected > 0; reach: expected >= 0")
        if init not in ("sphere", "blobs"):
            raise InputError(f"--init: expected sphere or blobs, got {init!r}")
        if init == "blobs" and z_dim < 12:
            raise InputError(f"z_dim: init='blobs' reads z[:12], got z_dim={z_dim}")
        self.classes, self.radius, self.init = list(classes), float(radius), init
        self.scale, self.reach = float(scale), float(reach)
        self.render = dict(render or {})
        w = width
        self.label = nn.Embedding(len(classes), 32)
        self.trunk = nn.Sequential(nn.Linear(32 + z_dim, w), nn.SiLU(), nn.Linear(w, w), nn.SiLU())
        fixed = torch.Generator().manual_seed(24)  # grid codes and sines: part of the architecture
        self.register_buffer("codes", torch.randn(grids, 32, generator=fixed), persistent=False)
        self.decode = nn.Sequential(nn.Linear(w + 32, w), nn.SiLU(), nn.Linear(w, 4 + k**3))
        last = self.decode[-1]
        assert isinstance(last, nn.Linear)
        nn.init.normal_(last.weight, std=1e-3)  # near the start, yet z matters from step 0
        nn.init.zeros_(last.bias)
        k3 = torch.randn(8, 3, generator=fixed, dtype=torch.float64) * (math.pi / BOUND)
        phase = torch.rand(8, generator=fixed, dtype=torch.float64) * (2 * math.pi)
        self.register_buffer("freqs", k3.float(), persistent=False)
        self.register_buffer("phase", phase.float(), persistent=False)
        self.register_buffer("anchors", fibonacci_sphere(grids, radius).float(), persistent=False)
        self.register_buffer("nodes", torch.linspace(-1.0, 1.0, k), persistent=False)

    def config(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "z_dim": self.z_dim,
            "width": self.width,
            "grids": self.n,
            "k": self.k,
            "radius": self.radius,
            "scale": self.scale,
            "reach": self.reach,
            "init": self.init,
            "render": self.render,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ShapeGenerator:
        return cls(**config)

    def labels(self, classes: list[str]) -> Tensor:
        """Class names -> label indices (an unknown one is an :class:`InputError`)."""
        for c in classes:
            if c not in self.classes:
                raise InputError(
                    f"--class: unknown class {c!r} for this generator; "
                    f"expected one of {', '.join(self.classes)}"
                )
        return torch.tensor([self.classes.index(c) for c in classes])

    def forward(self, labels: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if z.ndim != 2 or z.shape[1] != self.z_dim or labels.shape != (len(z),):
            raise InputError(
                f"labels, z: expected (B,) labels and (B, {self.z_dim}) noise, "
                f"got {tuple(labels.shape)} and {tuple(z.shape)}"
            )
        b, n, k = len(z), self.n, self.k
        h = self.trunk(torch.cat([self.label(labels.long()), z.float()], -1))
        raw = self.decode(
            torch.cat([h[:, None].expand(b, n, -1), self.codes.expand(b, -1, -1)], -1)
        )
        centres = self.anchors + self.shift(z)[:, None] + self.reach * torch.tanh(raw[..., :3])
        scales = self.scale * torch.exp(0.5 * torch.tanh(raw[..., 3]))
        lin = self.nodes
        grid = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1)  # (k, k, k, 3)
        nodes = centres[:, :, None, None, None] + scales[..., None, None, None, None] * grid
        base = self.base_sdf(nodes.reshape(b, -1, 3), z).reshape(b, n, k, k, k)
        return centres, scales, base + raw[..., 4:].reshape(b, n, k, k, k)

    def msdfs(self, labels: Tensor, z: Tensor) -> list[MSDF]:
        """The rows of one pass as :class:`~polyfold.shape.msdf.MSDF` objects (part 1's format:
        :func:`~polyfold.shape.msdf.save_msdf`, :func:`~polyfold.shape.msdf.to_mesh`)."""
        c, s, v = self.forward(labels, z)
        return [
            MSDF(c[i].detach(), s[i].detach(), v[i].detach(), self.classes[int(labels[i])])
            for i in range(len(z))
        ]

    def shift(self, z: Tensor) -> Tensor:
        """``(B, 3)``: the starting blob's centre (zero for ``init="sphere"``)."""
        return 0.1 * z.float()[:, :3] if self.init == "blobs" else z.new_zeros(len(z), 3).float()

    def base_sdf(self, p: Tensor, z: Tensor) -> Tensor:
        """The starting shape's SDF at points ``p (B, P, 3)`` (see the module docstring)."""
        if self.init == "sphere":
            return p.norm(dim=-1) - self.radius
        zf = z.float()
        radius = self.radius + 0.08 * (2 * torch.special.ndtr(zf[:, 3:4]) - 1)
        bumps = ((p @ self.freqs.T + self.phase).sin() * zf[:, None, 4:12]).sum(-1)
        return (p - self.shift(z)[:, None]).norm(dim=-1) - radius + bumps * (0.05 / math.sqrt(8))


def generate_msdfs(
    gen: ShapeGenerator, classes: list[str], *, seed: int = 0
) -> tuple[list[MSDF], float]:
    """One M-SDF per entry of ``classes`` (one batched forward pass, ``z ~ N(0, I)`` seeded by
    ``seed``) and the wall seconds of the pass."""
    labels = gen.labels(classes)
    z = torch.randn(len(classes), gen.z_dim, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    with torch.no_grad():
        out = gen.msdfs(labels, z)
    return out, time.perf_counter() - t0


def msdf_eikonal(scales: Tensor, values: Tensor) -> Tensor:
    """Mean ``(|grad| - 1)^2`` of finite differences inside each local grid (node spacing
    ``2 s / (k - 1)``) of batched M-SDF tensors: ``scales (..., n)``, ``values (..., n, k, k,
    k)``."""
    h = (2 * scales / (values.shape[-1] - 1))[..., None, None, None]
    base = values[..., :-1, :-1, :-1]
    gx = (values[..., 1:, :-1, :-1] - base) / h
    gy = (values[..., :-1, 1:, :-1] - base) / h
    gz = (values[..., :-1, :-1, 1:] - base) / h
    return ((gx**2 + gy**2 + gz**2 + 1e-12).sqrt() - 1).pow(2).mean()


@dataclass
class OneStepConfig:
    """One one-step training run (renderer settings default to the teacher's)."""

    classes: list[str] = field(default_factory=list)  # default: all the teacher's classes
    method: str = "vsd"  # SwiftBrush; "sds": no auxiliary network
    steps: int = 600
    batch: int = 2  # shapes per step (one class per step)
    views: int = 2  # cameras per shape
    z_dim: int = 16
    width: int = 128
    grids: int = 32  # M-SDF grids per shape
    k: int = 5  # values per grid edge
    radius: float = 0.3
    init: str = "blobs"  # "sphere": every z starts at the same sphere
    res: int = 24
    samples: int = 24
    beta: float = 0.01
    lr: float = 1e-3
    eikonal: float = 0.1
    guidance: float = 1.0
    t_lo: float = 0.02
    t_hi: float = 0.98
    t_end: float = 0.5
    # "net": a fresh AuxNet (camera + class); "teacher": a copy of the learned teacher's network,
    # fine-tuned (ProlificDreamer's / SwiftBrush's auxiliary starts as the teacher)
    aux: str = "net"
    aux_width: int = 32
    aux_lr: float = 1e-3
    aux_warmup: int = 50
    elevations: tuple[float, ...] = (10.0, 25.0, 40.0)
    azimuths: int = 12
    seed: int = 0
    log_every: int = 10

    def check(self) -> OneStepConfig:
        if self.method not in ("vsd", "sds"):
            raise InputError(f"--method: expected vsd or sds, got {self.method!r}")
        if self.init not in ("sphere", "blobs"):
            raise InputError(f"--init: expected sphere or blobs, got {self.init!r}")
        check_int("--steps", self.steps, 1)
        check_int("--batch", self.batch, 1)
        check_int("--views", self.views, 1)
        check_int("aux_warmup", self.aux_warmup, 0)
        if self.aux not in ("net", "teacher"):
            raise InputError(f"--aux: expected net or teacher, got {self.aux!r}")
        check_int("--grids", self.grids, 1)
        if not self.eikonal >= 0:
            raise InputError(f"--eikonal: expected >= 0, got {self.eikonal}")
        check_int("--k", self.k, 2)
        check_schedule(self.t_lo, self.t_end, self.t_hi, self.guidance)
        return self

    @property
    def render_kw(self) -> dict[str, Any]:
        return {"res": self.res, "samples": self.samples, "beta": self.beta}


@dataclass
class OneStepResult:
    """The trained generator, the per-step log and the wall seconds per training step."""

    generator: ShapeGenerator
    log: list[dict[str, float]]
    seconds_per_step: float
    config: dict[str, object]


class _ConditionedAux(nn.Module):
    """The auxiliary network with the current step's condition fixed (core's one-step pieces
    call it as ``aux(x_t, t, cond=None)``): an :class:`AuxNet`'s camera embeddings and one-hot
    class, or a copy of the learned teacher's network and its ``{"label", "camera"}``."""

    def __init__(self, aux: nn.Module) -> None:
        super().__init__()
        self.aux = aux
        self.cond: Tensor | dict[str, Tensor] | None = None

    def forward(self, x: Tensor, t: Tensor, cond: object = None) -> Tensor:
        assert self.cond is not None, "set .cond before calling"
        out: Tensor = self.aux(x, t, self.cond)
        return out


class _RenderedStudent(nn.Module):
    """``z -> renders``: the generator's M-SDFs of one class, each rendered at its ``views``
    cameras (shape-major rows, one batched pass); adds ``eikonal`` times the local grids'
    eikonal penalty to their values' gradient in the same backward pass (its value in
    ``last_eikonal``)."""

    def __init__(self, gen: ShapeGenerator, eikonal: float, render_kw: dict[str, Any]) -> None:
        super().__init__()
        self.gen, self.eikonal, self.render_kw = gen, eikonal, render_kw
        self.label = 0
        self.cams: Cameras | None = None
        self.last_eikonal = 0.0

    def forward(self, z: Tensor) -> Tensor:
        assert self.cams is not None, "set .cams before calling"
        centres, scales, values = self.gen(torch.full((len(z),), self.label), z)
        if self.eikonal > 0 and values.requires_grad:
            g = values.detach().requires_grad_(True)
            with torch.enable_grad():
                eik = msdf_eikonal(scales.detach(), g)
                (extra,) = torch.autograd.grad(self.eikonal * eik, g)
            values.register_hook(lambda grad: grad + extra)
            self.last_eikonal = float(eik.detach())
        v = len(self.cams) // len(z)
        field = MSDFBatch(centres, scales, values, v)
        return render(field, self.cams, **self.render_kw).image()


def train_one_step(
    teacher: Teacher,
    cfg: OneStepConfig,
    *,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> OneStepResult:
    """Train a :class:`ShapeGenerator` on ``teacher``'s classes ``cfg.classes`` (default: all
    of them) by one-step VSD or SDS (see the module docstring)."""
    cfg.check()
    classes = list(cfg.classes) or list(getattr(teacher, "classes", []))
    if not classes:
        raise InputError("--class: expected at least one class")
    for c in classes:
        teacher.check_class(c)
    gen_rng = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    gen = ShapeGenerator(
        classes,
        z_dim=cfg.z_dim,
        width=cfg.width,
        grids=cfg.grids,
        k=cfg.k,
        radius=cfg.radius,
        init=cfg.init,
        render=cfg.render_kw,
    )
    student = _RenderedStudent(gen, cfg.eikonal, cfg.render_kw)
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    pool_e, pool_a = _pool(DistillConfig(elevations=cfg.elevations, azimuths=cfg.azimuths))
    path = teacher.path
    n_views = cfg.batch * cfg.views
    aux = aux_opt = None
    teacher_net: nn.Module | None = getattr(teacher, "model", None)
    if cfg.method == "vsd" and cfg.aux == "teacher":
        if teacher_net is None:
            raise InputError("--aux teacher: needs the learned teacher (a network to copy)")
        aux = _ConditionedAux(copy.deepcopy(teacher_net).train().requires_grad_(True))
    elif cfg.method == "vsd":
        aux = _ConditionedAux(AuxNet(width=cfg.aux_width, cond_dim=4 + len(classes)))
    if aux is not None:
        aux_opt = torch.optim.Adam(aux.parameters(), lr=cfg.aux_lr)

    def draw(i: int) -> tuple[str, Cameras]:
        idx = torch.randint(len(pool_e), (n_views,), generator=gen_rng)
        student.cams = Cameras(pool_e[idx], pool_a[idx])
        student.label = i % len(classes)
        if aux is not None and cfg.aux == "teacher":
            index = teacher_net.classes.index(classes[student.label])  # type: ignore[union-attr]
            label = torch.full((n_views,), index)
            aux.cond = {"label": label, "camera": student.cams.embedding()}
        elif aux is not None:
            onehot = F.one_hot(torch.tensor(student.label), len(classes)).float()
            aux.cond = torch.cat([student.cams.embedding(), onehot.expand(n_views, -1)], -1)
        return classes[student.label], student.cams

    if aux is not None and aux_opt is not None:
        for i in range(cfg.aux_warmup):
            draw(i)
            with torch.no_grad():
                z = torch.randn(cfg.batch, cfg.z_dim, generator=gen_rng)
                x = student(z)
            fit_aux(aux, aux_opt, x, path=path, prediction="eps", steps=1, generator=gen_rng)
    log: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        hi = annealed_t_max(cfg.t_hi, cfg.t_end, step, cfg.steps)
        cls, cams = draw(step)
        prior = teacher.denoiser(cls, cams, guidance=cfg.guidance)
        out = one_step_distillation_step(
            student,
            prior,
            opt,
            path=path,
            batch_size=cfg.batch,
            noise_shape=(cfg.z_dim,),
            aux_model=aux,
            aux_opt=aux_opt,
            t_range=(cfg.t_lo, hi),
            generator=gen_rng,
        )
        entry = {"step": float(step + 1), "eikonal": student.last_eikonal, "t_max": hi, **out}
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            log.append(entry)
        if progress is not None:
            progress(step + 1, entry)
    seconds = (time.perf_counter() - t0) / cfg.steps
    gen.eval()
    return OneStepResult(gen, log, seconds, {**asdict(cfg), "classes": classes})


def render_error(
    gen: ShapeGenerator, cls: str, targets: Tensor, cams: Cameras, *, seed: int = 0
) -> float:
    """Mean absolute pixel distance of one generated shape of ``cls``'s renders at ``cams`` to
    the nearest of ``targets`` ``(V, K, C, H, W)`` per view (a quick training check)."""
    (m,), _ = generate_msdfs(gen, [cls], seed=seed)
    with torch.no_grad():
        x = render(msdf_field(m), cams, **gen.render).image()
    return float((targets - x[:, None]).abs().mean((2, 3, 4)).amin(1).mean())
