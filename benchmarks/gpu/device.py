"""What ran the check (versions, card, its datasheet peaks) and an nvidia-smi sampler of GPU
utilisation and per-process memory while a sweep runs."""

from __future__ import annotations

import platform
import shutil
import subprocess
import threading
import time
from typing import Any

import torch

# Dense (no sparsity) peaks in TFLOP/s from NVIDIA's datasheets (H100, H200, A100 Tensor Core
# GPU), which print the tensor-core rates with 2:4 sparsity: dense = half of those.
# (substrings the lower-cased device name must contain, card, bf16, tf32, fp32 non-tensor)
PEAKS = (
    (("h200", "nvl"), "H200 NVL", 835.5, 417.5, 60.0),
    (("h200",), "H200 SXM", 989.5, 494.5, 67.0),
    (("h100", "nvl"), "H100 NVL", 835.5, 417.5, 60.0),
    (("h100", "pcie"), "H100 PCIe", 756.5, 378.0, 51.0),
    (("h100",), "H100 SXM", 989.5, 494.5, 67.0),
    (("a100",), "A100", 312.0, 156.0, 19.5),
)
PEAK_SOURCE = "NVIDIA datasheets, dense tensor-core rates (the datasheets' sparsity figures halved)"


def card_peaks(name: str) -> dict[str, Any]:
    """Dense peaks of the card named ``name`` (``torch.cuda.get_device_name``); None when unknown."""
    lower = name.lower()
    for needles, card, bf16, tf32, fp32 in PEAKS:
        if all(n in lower for n in needles):
            return {"card": card, "bf16_dense_tflops": bf16, "tf32_dense_tflops": tf32, "fp32_tflops": fp32,
                    "source": PEAK_SOURCE}  # fmt: skip
    return {"card": None, "bf16_dense_tflops": None, "tf32_dense_tflops": None, "fp32_tflops": None,
            "source": f"no peak known for {name!r}"}  # fmt: skip


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, the card, its peaks and the precision flags in force."""
    import torchvision

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "torch_cuda": torch.version.cuda, "device": str(device), "cpu_threads": torch.get_num_threads(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "hostname": platform.node(),
    }  # fmt: skip
    try:
        import ray

        env["ray"] = ray.__version__
    except ImportError:
        env["ray"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = torch.cuda.get_device_name(device)
        env.update(device_name=name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                   peak=card_peaks(name), cudnn_allow_tf32=torch.backends.cudnn.allow_tf32)  # fmt: skip
    else:
        env.update(device_name=f"CPU ({platform.processor() or platform.machine()})", peak=card_peaks(""))
    return env


class SmiSampler:
    """Samples ``nvidia-smi`` every ``interval`` seconds on a thread: the card's utilisation and
    memory, and each compute process's memory (its peak by pid). Without nvidia-smi it records why."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.utilisation: list[tuple[float, float]] = []  # (time, percent)
        self.card_memory_mib: list[float] = []
        self.peak_mib_by_pid: dict[int, float] = {}
        self.error: str | None = None if shutil.which("nvidia-smi") else "nvidia-smi not found"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smi-sampler", daemon=True)
        if self.error is None:
            self._thread.start()

    @staticmethod
    def _query(*what: str) -> list[list[str]]:
        done = subprocess.run(["nvidia-smi", *what, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                              timeout=10)  # fmt: skip
        return [[c.strip() for c in line.split(",")] for line in done.stdout.splitlines() if line.strip()]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for util, used in self._query("--query-gpu=utilization.gpu,memory.used")[:1]:
                    self.utilisation.append((time.time(), float(util)))
                    self.card_memory_mib.append(float(used))
                for pid, used in self._query("--query-compute-apps=pid,used_memory"):
                    self.peak_mib_by_pid[int(pid)] = max(self.peak_mib_by_pid.get(int(pid), 0.0), float(used))
            except (OSError, ValueError, subprocess.SubprocessError) as exc:  # an unknown format: keep what we have
                self.error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the summary: utilisation mean/median, share of samples ≥ 90 %, memory peaks."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        values = sorted(u for _, u in self.utilisation)
        return {
            "samples": len(values),
            "utilisation_mean_percent": sum(values) / len(values) if values else None,
            "utilisation_median_percent": values[len(values) // 2] if values else None,
            "utilisation_at_least_90_percent_share": sum(v >= 90 for v in values) / len(values) if values else None,
            "card_memory_max_mib": max(self.card_memory_mib, default=None),
            "peak_mib_by_pid": {str(k): v for k, v in self.peak_mib_by_pid.items()},
            "error": self.error,
        }
