"""Where a result came from: the code's git commit and the package versions, stored
with every run (`tunelab rerun` names what drifted)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "accelerate", "trl", "faiss-cpu",
            "sentence-transformers", "tunelab", "numpy")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           cwd=Path(__file__).parent, timeout=5)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# CPU features named in a machine's kind, strongest first: they decide which precisions and
# kernels are fast, so a figure is only comparable between machines of the same kind.
CPU_FEATURES = {"amx_tile": "AMX", "avx512f": "AVX-512", "avx2": "AVX2"}


def machine_kind() -> str:
    """The machine in words, without its model name: "2-core x86-64 CPU (AVX2), no GPU"."""
    arch = platform.machine().replace("_", "-") or "unknown"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    simd = [name for flag, name in CPU_FEATURES.items() if flag in flags][:1]
    cpu = f"{os.cpu_count()}-core {arch} CPU" + (f" ({simd[0]})" if simd else "")
    return f"{cpu}, {gpu_kind()}"


def gpu_kind() -> str:
    """Either "no GPU" or the count and name of the CUDA devices torch sees (torch only if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return "no GPU"
    n = torch.cuda.device_count()
    return f"{n} x {torch.cuda.get_device_name(0)}"
