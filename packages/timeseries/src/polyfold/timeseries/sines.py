"""The standard sines benchmark of TimeGAN (Yoon et al., 2019), also used by PaD-TS.

Each of the ``n`` windows has ``n_features`` channels; channel ``k`` of window ``i`` is
``x[i, j, k] = (sin(f_ik j + p_ik) + 1) / 2`` for ``j = 0 .. seq_len - 1`` with a frequency
``f_ik ~ U[0, 0.1)`` and a phase ``p_ik ~ U[0, 0.1)`` drawn independently per window and channel,
so every value lies in [0, 1]. The draws come from a ``torch.Generator`` (or an integer seed),
so the same seed gives the same windows on every machine.
"""

from __future__ import annotations

import numpy as np
import torch

from polyfold.core.errors import InputError, check_int, check_number

__all__ = ["sines"]


def sines(
    n: int = 10_000,
    seq_len: int = 24,
    n_features: int = 5,
    *,
    max_freq: float = 0.1,
    max_phase: float = 0.1,
    generator: torch.Generator | int | None = None,
) -> np.ndarray:
    """``n`` sine windows, ``(n, seq_len, n_features)`` float32 in [0, 1] (TimeGAN's sines).

    Args:
        n, seq_len, n_features: number of windows, their length and channel count
            (TimeGAN and PaD-TS use 10000 x 24 x 5).
        max_freq, max_phase: the upper ends of the uniform frequency and phase ranges (0.1 each).
        generator: a ``torch.Generator`` or an integer seed (default seed 0).
    """
    n = check_int("n", n)
    seq_len = check_int("seq_len", seq_len)
    n_features = check_int("n_features", n_features)
    for name, v in (("max_freq", max_freq), ("max_phase", max_phase)):
        check_number(name, v, strict=True)
    if generator is None or (isinstance(generator, int) and not isinstance(generator, bool)):
        gen = torch.Generator().manual_seed(0 if generator is None else generator)
    elif isinstance(generator, torch.Generator):
        gen = generator
    else:
        raise InputError(
            f"generator: expected a torch.Generator or an integer seed, got {generator!r}"
        )
    freq = torch.rand(n, 1, n_features, generator=gen, dtype=torch.float64) * max_freq
    phase = torch.rand(n, 1, n_features, generator=gen, dtype=torch.float64) * max_phase
    j = torch.arange(seq_len, dtype=torch.float64)[None, :, None]
    x = 0.5 * (torch.sin(freq * j + phase) + 1.0)
    return x.to(torch.float32).numpy()
