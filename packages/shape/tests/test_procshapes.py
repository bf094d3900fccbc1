import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.shape import sdf
from polyfold.shape.msdf import volume_points
from polyfold.shape.procshapes import CLASSES, check_classes, dataset, make_shape


def test_shapes_are_seeded_and_inside_the_unit_cube():
    x = volume_points(24, dtype=torch.float64)
    for c in CLASSES:
        a, b = make_shape(c, 3)(x), make_shape(c, 3)(x)
        assert torch.equal(a, b)
        assert (a < 0).any(), c
        assert x[a < 0].abs().max() <= 0.5, c
    assert not torch.equal(make_shape("chair", 0)(x), make_shape("chair", 1)(x))


def test_primitive_sdfs_are_exact():
    p = torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [0.0, 0.4, 0.3]], dtype=torch.float64)
    assert torch.allclose(
        sdf.sphere((0, 0, 0), 0.2)(p), torch.tensor([-0.2, 0.1, 0.3], dtype=torch.float64)
    )
    b = sdf.box((0, 0, 0), (0.1, 0.1, 0.1))(p)
    assert torch.allclose(
        b, torch.tensor([-0.1, 0.2, (0.3**2 + 0.2**2) ** 0.5], dtype=torch.float64)
    )


def test_unknown_class_is_a_clear_error():
    with pytest.raises(InputError, match=r"unknown class sofa.*expected one of chair"):
        check_classes("chair,sofa")
    with pytest.raises(InputError, match="cls"):
        make_shape("sofa", 0)
    assert len(dataset(["mug", "vase"], 2)) == 4
