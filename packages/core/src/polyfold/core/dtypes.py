"""Dtype constants shared by the core and the domain packages."""

from __future__ import annotations

import torch

__all__ = ["F64"]

#: float64, where the numerics demand it (path coefficients, likelihoods, sampler grids).
F64 = torch.float64
