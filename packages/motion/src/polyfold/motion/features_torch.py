"""Differentiable recovery of world joint positions from feature rows, in torch.

The same integration as :func:`polyfold.motion.features.joints_from_features` (cumulative
yaw, root xz velocity turned into the world frame and summed, root-relative joints turned by
the facing yaw), so a loss can see the integrated root trajectory:
:func:`joint_position_loss` scores reconstructions in metres on it, and
:func:`foot_contact_loss` is MDM's and EMDM's geometric foot term (no ankle motion while the
target's foot is in contact).
"""

from __future__ import annotations

import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.motion.features import LAYOUT, FeatureLayout

__all__ = ["foot_contact_loss", "joint_position_loss", "torch_joints_from_features"]


def _turn(yaw: Tensor, v: Tensor) -> Tensor:
    """Vectors ``v (..., 3)`` rotated by ``yaw`` (broadcast over ``v``'s last axis) about +y."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    x, y, z = v.unbind(-1)
    return torch.stack([c * x + s * z, y, c * z - s * x], dim=-1)


def torch_joints_from_features(features: Tensor, layout: FeatureLayout = LAYOUT) -> Tensor:
    """World joint positions ``(..., T, J, 3)`` of raw (not normalised) feature rows
    ``(..., T, D)``; differentiable, equal to the numpy recovery to float precision."""
    if features.ndim < 2 or features.shape[-1] != layout.dim:
        raise InputError(f"features: expected (..., T, {layout.dim}), got {tuple(features.shape)}")
    g = layout.groups
    yaw = torch.cumsum(features[..., g["yaw_vel"]][..., 0], dim=-1)
    v = features[..., g["root_vel"]]
    flat = torch.stack([v[..., 0], torch.zeros_like(v[..., 0]), v[..., 1]], dim=-1)
    root = torch.cumsum(_turn(yaw, flat), dim=-2)
    root = torch.cat([root[..., :1], features[..., g["root_height"]], root[..., 2:]], dim=-1)
    ric = features[..., g["ric"]].unflatten(-1, (-1, 3))
    joints = _turn(yaw[..., None], ric) + root[..., None, :]
    return torch.cat([root[..., None, :], joints], dim=-2)


def joint_position_loss(
    recon: Tensor, target: Tensor, mean: Tensor, std: Tensor, layout: FeatureLayout = LAYOUT
) -> tuple[Tensor, Tensor]:
    """``(position, velocity)`` mean absolute errors in metres (and metres per frame) of the
    world joints recovered from normalised feature rows ``recon`` and ``target`` ``(B, T, D)``
    (``mean`` and ``std`` undo the normalisation); both are zero on a perfect reconstruction."""
    pred = torch_joints_from_features(recon * std + mean, layout)
    true = torch_joints_from_features(target * std + mean, layout)
    pos = (pred - true).abs().mean()
    vel = (pred.diff(dim=-3) - true.diff(dim=-3)).abs().mean()
    return pos, vel


def foot_contact_loss(
    recon: Tensor, target: Tensor, mean: Tensor, std: Tensor, layout: FeatureLayout = LAYOUT
) -> Tensor:
    """Mean squared ankle displacement (metres per frame) of the joints recovered from
    normalised rows ``recon (B, T, D)`` on the frames where ``target``'s contact features say
    that foot is on the ground; zero when the reconstruction keeps planted feet still."""
    sk = layout.skeleton
    ankles = [sk.index("left_ankle"), sk.index("right_ankle")]
    feet = torch_joints_from_features(recon * std + mean, layout)[..., ankles, :]
    c = layout.groups["contact"]
    contact = ((target[..., c] * std[c] + mean[c]) > 0.5).to(recon.dtype)[..., 1:, :]
    return (feet.diff(dim=-3).pow(2).sum(-1) * contact).mean()
