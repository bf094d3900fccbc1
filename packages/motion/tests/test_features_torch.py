import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.features import LAYOUT, joints_from_features, motion_features
from polyfold.motion.features_torch import (
    foot_contact_loss,
    joint_position_loss,
    torch_joints_from_features,
)
from polyfold.motion.tokenizer import MotionTokenizer, tokenizer_loss


def _features(names=("humanoid3d_spinkick", "walker_turn_right0")) -> np.ndarray:
    clips = [motion_features(c.resampled())[:24] for c in load_clips(names)]
    return np.stack(clips)


def test_torch_recovery_equals_numpy():
    f = _features()
    f[:, :, :3] += np.random.default_rng(0).normal(scale=0.05, size=f[:, :, :3].shape)
    want = np.stack([joints_from_features(x) for x in f])
    got = torch_joints_from_features(torch.from_numpy(f)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    got32 = torch_joints_from_features(torch.from_numpy(f).float()).numpy()
    np.testing.assert_allclose(got32, want, atol=1e-4)


def test_torch_recovery_is_differentiable_and_checks_shape():
    f = torch.from_numpy(_features(("walker_turn_right0",))).requires_grad_()
    torch_joints_from_features(f)[:, -1].sum().backward()
    # the last frame's position depends on every earlier yaw and root velocity
    assert bool((f.grad[0, 1:, :3].abs() > 0).all())
    with pytest.raises(InputError, match=r"\(\.\.\., T, 155\)"):
        torch_joints_from_features(torch.zeros(4, 10))


def test_joint_loss_zero_on_perfect_reconstruction_and_positive_otherwise():
    f = torch.from_numpy(_features()).float()
    mean, std = f.mean((0, 1)), f.std((0, 1)).clamp_min(1e-3)
    x = (f - mean) / std
    pos, vel = joint_position_loss(x, x, mean, std)
    assert float(pos) == 0.0
    assert float(vel) == 0.0
    y = x.clone()
    y[:, :, 0] += 0.1  # a yaw-velocity bias turns the whole integrated path
    pos, vel = joint_position_loss(y, x, mean, std)
    assert float(pos) > 0.01
    assert float(vel) > 0.0


def test_tokenizer_loss_adds_joint_terms_with_stats():
    torch.manual_seed(0)
    model = MotionTokenizer(feature_dim=LAYOUT.dim, width=16, code_dim=8, num_codes=16,
                            num_quantizers=2, blocks=1, joint_weight=2.0,
                            joint_vel_weight=0.5)  # fmt: skip
    x = torch.randn(2, 16, LAYOUT.dim)
    denorm = (torch.zeros(LAYOUT.dim), torch.full((LAYOUT.dim,), 0.1))
    torch.manual_seed(1)
    loss, parts = tokenizer_loss(model.eval(), x, denorm)
    torch.manual_seed(1)
    plain, plain_parts = tokenizer_loss(model.eval(), x)
    assert set(parts) - set(plain_parts) == {"joint_m", "joint_vel_m"}
    expected = float(plain.detach()) + 2.0 * parts["joint_m"] + 0.5 * parts["joint_vel_m"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_foot_contact_loss_counts_only_planted_feet():
    f = torch.from_numpy(_features(("walker_turn_right0",))).float()
    mean, std = torch.zeros(LAYOUT.dim), torch.ones(LAYOUT.dim)
    c = LAYOUT.groups["contact"]
    ankles = [LAYOUT.skeleton.index("left_ankle"), LAYOUT.skeleton.index("right_ankle")]
    target = f.clone()
    target[..., c] = 0.0  # no foot planted: nothing to penalise
    assert float(foot_contact_loss(f, target, mean, std)) == 0.0
    target[..., c] = 1.0  # both planted throughout: the mean squared ankle step
    feet = torch_joints_from_features(f)[..., ankles, :]
    expected = feet.diff(dim=-3).pow(2).sum(-1).mean()
    torch.testing.assert_close(foot_contact_loss(f, target, mean, std), expected)
    assert float(expected) > 0.0
