"""What this machine offers polyfold: installed polyfold packages, torch, devices, Triton."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from polyfold.core._version import __version__

# torch is imported inside the functions that need it: the umbrella CLI imports this module
# and should start without loading torch.

__all__ = [
    "PackageInfo",
    "SystemInfo",
    "installed_packages",
    "system_info",
    "triton_available",
]


@dataclass(frozen=True)
class PackageInfo:
    """An installed polyfold distribution and the entry points it registers."""

    name: str
    version: str
    entry_points: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SystemInfo:
    """A snapshot of the environment, as ``polyfold info`` prints it."""

    polyfold_version: str
    python: str
    platform: str
    torch: str
    devices: list[str]
    triton: str
    triton_usable: bool
    packages: list[PackageInfo]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def installed_packages() -> list[PackageInfo]:
    """Every installed distribution named ``polyfold-*``, sorted by name."""
    found: dict[str, PackageInfo] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or not name.lower().replace("_", "-").startswith("polyfold-"):
            continue
        groups: dict[str, list[str]] = {}
        for ep in dist.entry_points:
            if ep.group.startswith("polyfold.") or ep.group == "console_scripts":
                groups.setdefault(ep.group, []).append(ep.name)
        found[name] = PackageInfo(name, dist.version, {k: sorted(v) for k, v in groups.items()})
    return [found[k] for k in sorted(found)]


def triton_available() -> bool:
    """True when polyfold's Triton kernels can run: Triton importable and a CUDA device present."""
    if importlib.util.find_spec("triton") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _triton_version() -> str:
    try:
        return metadata.version("triton")
    except metadata.PackageNotFoundError:
        return "not installed"


def _devices() -> list[str]:
    import torch

    devices = [f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gib = props.total_memory / 2**30
            devices.append(f"cuda:{i} {props.name} ({gib:.0f} GiB)")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def system_info() -> SystemInfo:
    """Probe the environment (imports torch; touches CUDA only to list devices)."""
    import torch

    return SystemInfo(
        polyfold_version=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        torch=torch.__version__,
        devices=_devices(),
        triton=_triton_version(),
        triton_usable=triton_available(),
        packages=installed_packages(),
    )
