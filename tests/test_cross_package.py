"""One package using another's model file (never its code), with every package installed."""

from __future__ import annotations

import torch


def test_speech_vocodes_with_the_shipped_ddsp_vocoder():
    """polyfold-speech's ``ddsp`` vocoder builds polyfold-ddsp's shipped model from its file
    through the ``polyfold.models`` entry point: one mel frame gives one hop of samples."""
    from polyfold.speech.vocoder import Vocoder

    mel = torch.randn(1, 80, 10) - 5
    out = Vocoder("ddsp")(mel)
    assert out.shape == (1, 10 * 256)
    assert bool(torch.isfinite(out).all())
