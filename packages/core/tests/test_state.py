"""States, per-key values and masks."""

from __future__ import annotations

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.paths import VE, VPLinear
from polyfold.core.state import (
    apply_mask,
    expand_to,
    keep_padding,
    masked_mean,
    outer_mask,
    per_key,
    randn_like,
    tree_map,
)


def _seq_mask() -> torch.Tensor:
    lengths = torch.tensor([4, 2, 0])
    return torch.arange(4)[None, :] < lengths[:, None]  # (3, 4)


def test_tree_map_tensor_and_dict_with_shared_values() -> None:
    x = torch.ones(2, 3)
    assert torch.equal(tree_map(lambda a, b: a + b, x, x), 2 * x)
    state = {"x": torch.ones(2, 3), "adj": torch.zeros(2, 3, 3)}
    paths = {"x": VPLinear(), "adj": VE()}
    out = tree_map(lambda s, p, c: p.alpha(0.5) * s + c, state, paths, 1.0)
    assert set(out) == {"x", "adj"}
    torch.testing.assert_close(out["adj"], torch.ones(2, 3, 3))
    with pytest.raises(InputError, match="keys"):
        tree_map(lambda a, b: a, state, {"x": 1})
    with pytest.raises(InputError, match="single tensor"):
        tree_map(lambda a, b: a, x, {"x": 1})


def test_per_key() -> None:
    state = {"a": torch.zeros(1), "b": torch.zeros(1)}
    path = VPLinear()
    assert per_key(path, state) == {"a": path, "b": path}
    assert per_key({"b": 2, "a": 1}, state) == {"a": 1, "b": 2}
    with pytest.raises(InputError, match="paths"):
        per_key({"a": 1}, state, "paths")


def test_expand_to() -> None:
    x = torch.zeros(3, 4, 5)
    assert expand_to(torch.arange(3.0), x).shape == (3, 1, 1)
    assert expand_to(2.0, x).shape == (1, 1, 1)
    assert expand_to(torch.ones(3, 4), x).shape == (3, 4, 1)
    with pytest.raises(InputError, match="coefficient"):
        expand_to(torch.ones(4), x)


def test_apply_mask_zeroes_padding_only() -> None:
    mask = _seq_mask()
    x = torch.randn(3, 4, 2) + 5.0
    out = apply_mask(x, mask)
    assert torch.equal(out[mask], x[mask])
    assert (out[~mask] == 0).all()
    assert apply_mask(x, None) is x
    # a nan in the padding is zeroed too (not multiplied)
    x[2, 0, 0] = float("nan")
    assert not apply_mask(x, mask).isnan().any()


def test_dict_masks_and_outer_mask() -> None:
    node = _seq_mask()
    state = {"x": torch.randn(3, 4, 5), "adj": torch.randn(3, 4, 4)}
    out = apply_mask(state, {"x": node, "adj": outer_mask(node)})
    assert (out["x"][~node] == 0).all()
    assert (out["adj"][1, 2:, :] == 0).all()
    assert (out["adj"][1, :, 2:] == 0).all()
    assert torch.equal(out["adj"][1, :2, :2], state["adj"][1, :2, :2])


def test_keep_padding() -> None:
    mask = _seq_mask()
    old = apply_mask(torch.randn(3, 4, 2), mask)
    new = torch.randn(3, 4, 2)
    out = keep_padding(new, old, mask)
    assert torch.equal(out[mask], new[mask])
    assert (out[~mask] == 0).all()
    state_new = {"a": new, "b": new.clone()}
    state_old = {"a": old, "b": old}
    res = keep_padding(state_new, state_old, {"a": mask, "b": None})
    assert torch.equal(res["b"], new)


def test_masked_mean() -> None:
    mask = _seq_mask()
    x = torch.randn(3, 4, 2)
    x[~mask] = 1e6
    valid = x[mask]  # (6, 2)
    torch.testing.assert_close(masked_mean(x, mask), valid.mean())
    per = masked_mean(x, mask, per_example=True)
    torch.testing.assert_close(per[0], x[0].mean())
    torch.testing.assert_close(per[1], x[1, :2].mean())
    assert per[2].item() == 0.0  # no valid entry
    torch.testing.assert_close(masked_mean(x, None, per_example=True), x.flatten(1).mean(1))
    with pytest.raises(InputError, match="bool"):
        masked_mean(x, mask.float())
    with pytest.raises(InputError, match="mask"):
        masked_mean(x, mask[:, :3])


def test_randn_like_uses_the_generator() -> None:
    state = {"a": torch.zeros(2, 3), "b": torch.zeros(2, dtype=torch.float64)}
    one = randn_like(state, generator=torch.Generator().manual_seed(0))
    two = randn_like(state, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one["a"], two["a"])
    assert one["b"].dtype == torch.float64


def test_expand_to_keeps_python_numbers_at_the_state_precision() -> None:
    x = torch.ones(2, 3, dtype=torch.float64)
    third = 1.0 / 3.0
    assert expand_to(third, x).dtype == torch.float64
    assert float(expand_to(third, x)) == third  # not rounded through float32
    assert expand_to(third, x.float()).dtype == torch.float32
