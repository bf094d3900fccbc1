"""GDSS's score networks: ScoreNetworkX (GCN) and ScoreNetworkA (graph multi-head attention).

Both take ``(x (B, N, F), adj (B, N, N), mask (B, N) bool)`` and no time (as in the paper; the
noise level is read off the noisy input). ScoreNetworkX concatenates the input and the output
of every dense GCN layer (tanh) and maps them with an MLP to one value per node feature.
ScoreNetworkA starts from the powers ``A, A^2, ..., A^{c_init}`` of the adjacency; each
attention layer runs one multi-head attention per channel, whose GCN-computed queries and keys
give a new symmetric channel ``tanh(Q K^T / sqrt(d))`` (heads averaged), and an MLP mixes the
attention and input channels into the next channel set; an MLP over all channels of all layers
gives one symmetric value per node pair (zero diagonal). Every output is zero on padding, and
both networks are permutation equivariant.

:class:`GDSSScore` holds both and is the ``model(state, t, cond)`` that core's losses and
samplers call (``cond`` is the node mask).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.export import register_model
from polyfold.graph.sde import mask_adj, mask_x

__all__ = [
    "MLP",
    "PRESET_MODELS",
    "DenseGCNConv",
    "GDSSConfig",
    "GDSSScore",
    "GraphAttention",
    "ScoreNetworkA",
    "ScoreNetworkX",
    "adjacency_powers",
]


class DenseGCNConv(nn.Module):
    """Dense GCN layer ``D^-1/2 (A + I) D^-1/2 X W + b`` with degrees clamped at 1."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        n = adj.shape[-1]
        eye = torch.eye(n, dtype=torch.bool, device=adj.device)
        a = torch.where(eye, torch.ones((), dtype=adj.dtype, device=adj.device), adj)
        d = a.sum(-1).clamp(min=1).pow(-0.5)
        a = d[..., :, None] * a * d[..., None, :]
        return a @ (x @ self.weight) + self.bias


class MLP(nn.Module):
    """``num_layers`` linear layers with an activation between them (none after the last)."""

    def __init__(
        self, num_layers: int, in_dim: int, hidden: int, out_dim: int, act: Any = F.elu
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.act = act
        for lin in self.layers:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        for lin in self.layers[:-1]:
            x = self.act(lin(x))
        out: Tensor = self.layers[-1](x)
        return out


class ScoreNetworkX(nn.Module):
    """GDSS's node score network: ``depth`` dense GCN layers (tanh), skip concatenation, MLP."""

    def __init__(self, n_features: int, depth: int, nhid: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            DenseGCNConv(n_features if i == 0 else nhid, nhid) for i in range(depth)
        )
        fdim = n_features + depth * nhid
        self.final = MLP(3, fdim, 2 * fdim, n_features)

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor) -> Tensor:
        feats = [x]
        for conv in self.convs:
            x = torch.tanh(conv(x, adj))
            feats.append(x)
        return mask_x(self.final(torch.cat(feats, dim=-1)), mask)


class GraphAttention(nn.Module):
    """Multi-head attention on one adjacency channel: GCN queries, keys and values.

    Returns the new node features ``V`` and the symmetric attention matrix (mean over heads of
    ``tanh(Q_h K_h^T / sqrt(out_dim))``, symmetrised).
    """

    def __init__(self, in_dim: int, attn_dim: int, out_dim: int, num_heads: int) -> None:
        super().__init__()
        if attn_dim % num_heads:
            raise InputError(f"adim: expected a multiple of num_heads={num_heads}, got {attn_dim}")
        self.q = DenseGCNConv(in_dim, attn_dim)
        self.k = DenseGCNConv(in_dim, attn_dim)
        self.v = DenseGCNConv(in_dim, out_dim)
        self.num_heads, self.out_dim = num_heads, out_dim

    def forward(self, x: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = x.shape
        q = self.q(x, adj).view(b, n, self.num_heads, -1).transpose(1, 2)
        k = self.k(x, adj).view(b, n, self.num_heads, -1).transpose(1, 2)
        att = torch.tanh(q @ k.transpose(-1, -2) / math.sqrt(self.out_dim)).mean(1)
        return self.v(x, adj), 0.5 * (att + att.transpose(-1, -2))


class AttentionLayer(nn.Module):
    """One attention per input channel; MLPs mix node features and the new adjacency channels."""

    def __init__(
        self,
        num_linears: int,
        in_dim: int,
        attn_dim: int,
        out_dim: int,
        c_in: int,
        c_out: int,
        num_heads: int,
    ) -> None:
        super().__init__()
        self.attn = nn.ModuleList(
            GraphAttention(in_dim, attn_dim, out_dim, num_heads) for _ in range(c_in)
        )
        hidden = 2 * max(c_in, c_out)
        self.mlp = MLP(num_linears, 2 * c_in, hidden, c_out)
        self.multi_channel = MLP(2, c_in * out_dim, hidden, out_dim)

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # all channels at once (the same arithmetic as running ``self.attn[c]`` on ``adj[:, c]``
        # for each channel, see ``forward_reference``; one normalised adjacency per channel)
        b, c, n, _ = adj.shape
        eye = torch.eye(n, dtype=torch.bool, device=adj.device)
        a = torch.where(eye, torch.ones((), dtype=adj.dtype, device=adj.device), adj)
        d = a.sum(-1).clamp(min=1).pow(-0.5)
        a = d[..., :, None] * a * d[..., None, :]  # (B, C, N, N)

        def gcn(name: str) -> Tensor:
            w = torch.stack([getattr(att, name).weight for att in self.attn])  # (C, F, D)
            bias = torch.stack([getattr(att, name).bias for att in self.attn])  # (C, D)
            return a @ torch.einsum("bnf,cfd->bcnd", x, w) + bias[None, :, None, :]

        q, k, v = gcn("q"), gcn("k"), gcn("v")
        heads, out_dim = self.attn[0].num_heads, self.attn[0].out_dim
        q = q.view(b, c, n, heads, -1).transpose(2, 3)
        k = k.view(b, c, n, heads, -1).transpose(2, 3)
        att = torch.tanh(q @ k.transpose(-1, -2) / math.sqrt(out_dim)).mean(2)
        att = 0.5 * (att + att.transpose(-1, -2))  # (B, C, N, N)
        xs = v.permute(0, 2, 1, 3).reshape(b, n, -1)  # channel-major, as torch.cat over channels
        return self._mix(xs, att.permute(0, 2, 3, 1), adj, mask)

    def forward_reference(self, x: Tensor, adj: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The per-channel loop of GDSS's code (slower; :meth:`forward` computes the same)."""
        xs, atts = [], []
        for c, att in enumerate(self.attn):
            v, a = att(x, adj[:, c])
            xs.append(v)
            atts.append(a)
        return self._mix(torch.cat(xs, dim=-1), torch.stack(atts, dim=-1), adj, mask)

    def _mix(self, xs: Tensor, atts: Tensor, adj: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x_out = torch.tanh(mask_x(self.multi_channel(xs), mask))
        mlp_in = torch.cat([atts, adj.permute(0, 2, 3, 1)], dim=-1)
        a_out = self.mlp(mlp_in).permute(0, 3, 1, 2)
        a_out = a_out + a_out.transpose(-1, -2)
        return x_out, mask_adj(a_out, mask)


def adjacency_powers(adj: Tensor, c: int) -> Tensor:
    """``(B, c, N, N)``: ``A, A^2, ..., A^c``."""
    out, cur = [adj], adj
    for _ in range(c - 1):
        cur = cur @ adj
        out.append(cur)
    return torch.stack(out, dim=1)


class ScoreNetworkA(nn.Module):
    """GDSS's adjacency score network (graph multi-head attention over adjacency powers)."""

    def __init__(
        self,
        n_features: int,
        nhid: int,
        num_layers: int,
        num_linears: int,
        c_init: int,
        c_hid: int,
        c_final: int,
        adim: int,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise InputError(f"num_layers: expected an integer >= 2, got {num_layers!r}")
        self.c_init = c_init
        layers = []
        for i in range(num_layers):
            if i == 0:
                args = (n_features, nhid, nhid, c_init, c_hid)
            elif i == num_layers - 1:
                args = (nhid, adim, nhid, c_hid, c_final)
            else:
                args = (nhid, adim, nhid, c_hid, c_hid)
            layers.append(AttentionLayer(num_linears, *args[:3], *args[3:], num_heads))
        self.layers = nn.ModuleList(layers)
        fdim = c_hid * (num_layers - 1) + c_final + c_init
        self.final = MLP(3, fdim, 2 * fdim, 1)

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor) -> Tensor:
        a = adjacency_powers(adj, self.c_init)
        chans = [a]
        for layer in self.layers:
            x, a = layer(x, a, mask)
            chans.append(a)
        score = self.final(torch.cat(chans, dim=1).permute(0, 2, 3, 1)).squeeze(-1)
        upper = score.triu(1)  # exactly symmetric, zero diagonal
        return mask_adj(upper + upper.transpose(-1, -2), mask)


@dataclass(frozen=True)
class GDSSConfig:
    """Hyperparameters of both networks (GDSS's ``model`` config block)."""

    n_features: int
    max_nodes: int
    depth: int = 2
    nhid: int = 16
    adim: int = 16
    num_layers: int = 3
    num_linears: int = 3
    c_init: int = 2
    c_hid: int = 8
    c_final: int = 4
    num_heads: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESET_MODELS: dict[str, GDSSConfig] = {
    # config/qm9.yaml: depth 2, nhid 16, adim 16, 3 attention layers, 3 linears, c 2/8/4
    "qm9": GDSSConfig(n_features=4, max_nodes=9),
    # config/zinc250k.yaml
    "zinc250k": GDSSConfig(
        n_features=9, max_nodes=38, depth=2, nhid=16, adim=16, num_layers=6, num_linears=3
    ),
    # config/community_small.yaml: degree one-hot features (10), 20 nodes
    "community_small": GDSSConfig(
        n_features=10, max_nodes=20, depth=3, nhid=32, adim=32, num_layers=5, num_linears=2
    ),
}


@register_model("graph.GDSSScore")
class GDSSScore(nn.Module):
    """Both score networks as one ``model(state, t, cond) -> state``; ``cond`` is the node mask.

    ``t`` is accepted and unused: GDSS's networks are not time-conditioned.
    """

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GDSSScore:
        """Build from :meth:`GDSSConfig.to_dict`'s output (how model files rebuild it)."""
        return cls(GDSSConfig(**config))

    def __init__(self, config: GDSSConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.net_x = ScoreNetworkX(c.n_features, c.depth, c.nhid)
        self.net_adj = ScoreNetworkA(
            c.n_features,
            c.nhid,
            c.num_layers,
            c.num_linears,
            c.c_init,
            c.c_hid,
            c.c_final,
            c.adim,
            c.num_heads,
        )

    def forward(
        self, state: dict[str, Tensor], t: Tensor | None, cond: Tensor
    ) -> dict[str, Tensor]:
        x, adj = state["x"], state["adj"]
        if not isinstance(cond, Tensor) or cond.dtype != torch.bool:
            raise InputError("cond: expected the node mask (B, N) bool")
        return {"x": self.net_x(x, adj, cond), "adj": self.net_adj(x, adj, cond)}
