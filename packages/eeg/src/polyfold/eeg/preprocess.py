"""The one preprocessing both models (WGAN-GP and diffusion) see: per-channel spectral whitening.

EEG has a steep ``1/f`` background: on simtuar the 35-100 Hz bins hold 100-1000x less power than
the delta bins. A model that works on plainly standardised windows spends its capacity (and the
diffusion model its noise schedule) on the few low-frequency bins; an error that is small in
mean square, such as faint broadband residual noise, is still 30-150x the real power at high
frequencies, which is exactly where band-power errors and the EMG classes live. So both models
work on whitened windows:

``z[c] = irfft(rfft(x[c] - mean[c]) / amp[c, f])``

with ``mean[c]`` the channel mean and ``amp[c, f]`` the root of the typical power of each rfft
bin of each channel over the training windows (``kind="whiten"``, the default): the geometric
mean over windows, times ``exp(gamma)`` (Euler's constant) so that stationary Gaussian noise
whitens to unit power in every bin. The geometric mean keeps the few huge artifacts (eye
movements at 0.5-4 Hz) from setting the scale for every class: with an arithmetic mean the
other classes sit far below unit power in those bins and a small model error there is a large
relative one. An error of a given size then costs about the same relative power in every band
and class, and the network sees the frequency content evenly. The map is linear and exactly
invertible (``from_model`` multiplies the bins back), fitted on the training subjects only and
pooled over classes (class differences stay in the data). ``kind="standardise"`` (the earlier
default: ``amp`` constant per channel, the pooled standard deviation) is kept for comparison and
for model files written before.

ArtifactGen preprocessed each model differently (per-window min-max for the WGAN, per-recording
z-score for diffusion), which confounds the comparison; here both get the same map. Per-window
scaling is avoided on purpose: it would discard the amplitude that separates an eye movement
(100+ uV) from background (about 20 uV). Band limits are set when a set is made, not here:
:func:`polyfold.eeg.tuar.load_tuar` filters each recording to 0.5-100 Hz (plus a line-noise
notch) and simtuar is band-limited by construction; 100 Hz, not the 45 Hz where the paper's
bands stop, because muscle, chewing and shivering artifacts are EMG with power at 20-100 Hz.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.eeg.data import Windows

__all__ = ["KINDS", "Preprocessing"]

#: preprocessing kinds: spectral whitening (default) and plain per-channel standardisation
KINDS = ("whiten", "standardise")
_STATE_KIND = {
    "whiten": "per-channel spectral whitening",
    "standardise": "per-channel standardisation",
}


class Preprocessing:
    """Per-channel spectral whitening (or standardisation) fitted on training windows;
    invertible to microvolts. ``scale`` is ``(C,)`` for standardisation, ``(C, T // 2 + 1)``
    (root mean power of each rfft bin) for whitening, whose windows must then have ``n_times``
    samples."""

    def __init__(
        self,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        channels: tuple[str, ...] = (),
        sfreq: float = 0.0,
        *,
        kind: str = "whiten",
        n_times: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise InputError(
                f"preprocessing kind: expected one of {', '.join(KINDS)}, got {kind!r}"
            )
        self.kind = kind
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        self.channels = tuple(channels)
        self.sfreq = float(sfreq)
        self.n_times = int(n_times)

    @property
    def fitted(self) -> bool:
        return self.mean is not None and self.scale is not None

    def fit(self, train: Windows) -> Preprocessing:
        """Fit each channel's mean and its standard deviation (``standardise``) or the root
        mean power of each of its rfft bins (``whiten``) over all training windows."""
        if len(train) == 0:
            raise InputError("train: expected at least one window to fit the preprocessing")
        x = train.x.astype(np.float64)
        self.mean = x.mean(axis=(0, 2))
        xc = x - self.mean[None, :, None]
        if self.kind == "standardise":
            self.scale = np.maximum(xc.std(axis=(0, 2)), 1e-6)
        else:
            power = np.abs(np.fft.rfft(xc, axis=-1)) ** 2 / x.shape[-1]
            # geometric mean over windows (unbiased for Gaussian bins by exp(Euler's gamma)):
            # a typical window's power, not one dominated by the largest artifacts
            log_power = np.log(power + 1e-12 * power.mean()).mean(axis=0) + np.euler_gamma
            amp = np.exp(0.5 * log_power)
            self.scale = np.maximum(amp, 1e-6 * amp.max(axis=1, keepdims=True) + 1e-12)
        self.channels, self.sfreq, self.n_times = train.channels, train.sfreq, train.n_times
        return self

    def _check(self, channels: tuple[str, ...] | None, sfreq: float | None) -> tuple[Any, Any]:
        """``(mean, scale)``, after checking the fit and the windows' channels and rate."""
        if self.mean is None or self.scale is None:
            raise InputError("preprocessing: not fitted; call fit(train) first")
        if channels is not None and channels != self.channels:
            raise InputError(f"windows: channels {channels} differ from the fitted {self.channels}")
        if sfreq is not None and sfreq != self.sfreq:
            raise InputError(f"windows: sfreq {sfreq} differs from the fitted {self.sfreq}")
        return self.mean, self.scale

    def _shape(self, x: np.ndarray, what: str) -> None:
        c = len(self.channels) if self.mean is None else len(self.mean)
        t = self.n_times if self.kind == "whiten" else None
        if x.ndim != 3 or x.shape[1] != c or (t is not None and x.shape[2] != t):
            want = f"(N, {c}, {'T' if t is None else t})"
            raise InputError(f"{what}: expected shape {want}, got {x.shape}")

    def to_model(self, w: Windows | np.ndarray) -> torch.Tensor:
        """(N, C, T) float32 whitened (or standardised) tensor of windows or microvolts."""
        if isinstance(w, Windows):
            mean, scale = self._check(w.channels, w.sfreq)
            x = np.asarray(w.x, dtype=np.float64)
        else:
            mean, scale = self._check(None, None)
            x = np.asarray(w, dtype=np.float64)
        self._shape(x, "windows")
        xc = x - mean[None, :, None]
        if self.kind == "standardise":
            z = xc / scale[None, :, None]
        else:
            z = np.fft.irfft(np.fft.rfft(xc, axis=-1) / scale[None], n=x.shape[-1], axis=-1)
        return torch.from_numpy(z.astype(np.float32))

    def from_model(self, t: torch.Tensor | np.ndarray) -> np.ndarray:
        """Microvolts (N, C, T) float32 of model output."""
        mean, scale = self._check(None, None)
        z = t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        z = np.asarray(z, dtype=np.float64)
        self._shape(z, "samples")
        if self.kind == "standardise":
            xc = z * scale[None, :, None]
        else:
            xc = np.fft.irfft(np.fft.rfft(z, axis=-1) * scale[None], n=z.shape[-1], axis=-1)
        return np.asarray(xc + mean[None, :, None], dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (for model cards)."""
        mean, scale = self._check(None, None)
        state = {
            "kind": _STATE_KIND[self.kind],
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "channels": list(self.channels),
            "sfreq": self.sfreq,
        }
        if self.kind == "whiten":
            state["n_times"] = self.n_times
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`state_dict` (InputError on a malformed state)."""
        kinds = {v: k for k, v in _STATE_KIND.items()}
        try:
            kind = kinds.get(str(state.get("kind", _STATE_KIND["standardise"])))
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
            channels = tuple(str(c) for c in state["channels"])
            sfreq = float(state["sfreq"])
            n_times = int(state.get("n_times", 0))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"preprocessing state: malformed ({err!r})") from None
        if kind is None:
            raise InputError(f"preprocessing state: unknown kind {state.get('kind')!r}")
        want = (len(channels),) if kind == "standardise" else (len(channels), n_times // 2 + 1)
        if mean.shape != (len(channels),) or scale.shape != want or not (scale > 0).all():
            raise InputError(
                "preprocessing state: expected one mean per channel and "
                + (
                    "one scale > 0 per channel"
                    if kind == "standardise"
                    else "one amplitude > 0 per channel and rfft bin of n_times samples"
                )
            )
        return cls(mean, scale, channels, sfreq, kind=kind, n_times=n_times)
