"""Fused Triton kernels, each beside a plain-PyTorch reference of the same signature.

Dispatch (:func:`polyfold.core.ops._dispatch.use_triton`): the kernel runs on CUDA tensors when
Triton is importable (``pip install polyfold-core[triton]``), the reference everywhere else;
``POLYFOLD_DISABLE_TRITON=1`` forces the references. Each op's ``*_reference`` and ``*_triton``
are public so they can be compared (the tests run the kernels in Triton's CPU interpreter).
"""

from polyfold.core.ops.adaln import (
    adaln_modulate,
    adaln_modulate_reference,
    adaln_modulate_triton,
    gated_residual,
    gated_residual_reference,
    gated_residual_triton,
)
from polyfold.core.ops.categorical import (
    sample_categorical,
    sample_categorical_reference,
    sample_categorical_triton,
)
from polyfold.core.ops.grid_blend import (
    grid_blend_volume,
    grid_blend_volume_reference,
    grid_blend_volume_triton,
    local_grid_blend,
)
from polyfold.core.ops.multistep import (
    multistep_update,
    multistep_update_reference,
    multistep_update_triton,
)
from polyfold.core.ops.oscillator import (
    harmonic_oscillator,
    harmonic_oscillator_reference,
    harmonic_oscillator_triton,
)
from polyfold.core.ops.sgld import sgld_step, sgld_step_reference, sgld_step_triton

__all__ = [
    "adaln_modulate",
    "adaln_modulate_reference",
    "adaln_modulate_triton",
    "gated_residual",
    "gated_residual_reference",
    "gated_residual_triton",
    "grid_blend_volume",
    "grid_blend_volume_reference",
    "grid_blend_volume_triton",
    "harmonic_oscillator",
    "harmonic_oscillator_reference",
    "harmonic_oscillator_triton",
    "local_grid_blend",
    "multistep_update",
    "multistep_update_reference",
    "multistep_update_triton",
    "sample_categorical",
    "sample_categorical_reference",
    "sample_categorical_triton",
    "sgld_step",
    "sgld_step_reference",
    "sgld_step_triton",
]
