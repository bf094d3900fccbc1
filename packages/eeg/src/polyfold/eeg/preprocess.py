"""The one preprocessing both models (WGAN-GP and diffusion) see: per-channel standardisation.

ArtifactGen preprocessed each model differently (per-window min-max for the WGAN, per-recording
z-score for diffusion), which confounds the comparison. Here both get the same invertible map
``z[c] = (x[c] - mean[c]) / scale[c]``, with ``mean`` and ``scale`` (the pooled standard
deviation) of each channel fitted on the training windows only, and ``from_model`` maps samples
back to microvolts exactly.

Band limits are set when a set is made, not here: :func:`polyfold.eeg.tuar.load_tuar` filters
each continuous recording to 0.5-100 Hz (plus a line-noise notch) before cutting windows, and
simtuar is band-limited by construction. The upper edge is 100 Hz, not the 45 Hz where the
paper's evaluation bands stop, because muscle, chewing and shivering artifacts are EMG whose
power lies at 20-100 Hz: a 45 Hz low-pass would erase most of what tells those classes apart.
Per-window scaling is avoided on purpose: it would discard the amplitude that separates an
eye movement (100+ uV) from background (about 20 uV).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.eeg.data import Windows

__all__ = ["Preprocessing"]


class Preprocessing:
    """Per-channel standardisation fitted on training windows; invertible to microvolts."""

    def __init__(
        self,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        channels: tuple[str, ...] = (),
        sfreq: float = 0.0,
    ) -> None:
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.channels = tuple(channels)
        self.sfreq = float(sfreq)

    @property
    def fitted(self) -> bool:
        return self.mean is not None and self.scale is not None

    def fit(self, train: Windows) -> Preprocessing:
        """Fit each channel's mean and standard deviation over all training windows."""
        if len(train) == 0:
            raise InputError("train: expected at least one window to fit the preprocessing")
        x = train.x.astype(np.float64)
        self.mean = x.mean(axis=(0, 2))
        self.scale = np.maximum(x.std(axis=(0, 2)), 1e-6)
        self.channels, self.sfreq = train.channels, train.sfreq
        return self

    def _check(
        self, channels: tuple[str, ...] | None, sfreq: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, scale)``, after checking the fit and the windows' channels and rate."""
        if self.mean is None or self.scale is None:
            raise InputError("preprocessing: not fitted; call fit(train) first")
        if channels is not None and channels != self.channels:
            raise InputError(f"windows: channels {channels} differ from the fitted {self.channels}")
        if sfreq is not None and sfreq != self.sfreq:
            raise InputError(f"windows: sfreq {sfreq} differs from the fitted {self.sfreq}")
        return self.mean, self.scale

    def to_model(self, w: Windows | np.ndarray) -> torch.Tensor:
        """(N, C, T) float32 standardised tensor of windows (or of a microvolt array)."""
        if isinstance(w, Windows):
            mean, scale = self._check(w.channels, w.sfreq)
            x = w.x
        else:
            mean, scale = self._check(None, None)
            x = np.asarray(w)
        if x.ndim != 3 or x.shape[1] != len(mean):
            raise InputError(f"windows: expected shape (N, {len(mean)}, T), got {x.shape}")
        z = (x - mean[None, :, None]) / scale[None, :, None]
        return torch.from_numpy(z.astype(np.float32))

    def from_model(self, t: torch.Tensor | np.ndarray) -> np.ndarray:
        """Microvolts (N, C, T) float32 of standardised model output."""
        mean, scale = self._check(None, None)
        z = t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if z.ndim != 3 or z.shape[1] != len(mean):
            raise InputError(f"samples: expected shape (N, {len(mean)}, T), got {z.shape}")
        x = z * scale[None, :, None] + mean[None, :, None]
        return np.asarray(x, dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (for model cards)."""
        mean, scale = self._check(None, None)
        return {
            "kind": "per-channel standardisation",
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "channels": list(self.channels),
            "sfreq": self.sfreq,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`state_dict` (InputError on a malformed state)."""
        try:
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
            channels = tuple(str(c) for c in state["channels"])
            sfreq = float(state["sfreq"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"preprocessing state: malformed ({err!r})") from None
        if mean.shape != scale.shape or mean.shape != (len(channels),) or not (scale > 0).all():
            raise InputError("preprocessing state: expected one mean and one scale > 0 per channel")
        return cls(mean, scale, channels, sfreq)
