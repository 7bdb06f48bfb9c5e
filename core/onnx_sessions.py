"""ONNX Runtime sessions for the post-processing models: created once per (file, provider choice) and
reused across runs, reporting the execution provider each one really got (a CUDA request that fell
back to CPU shows up in the node's text output)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from . import comfy_adapter

PROVIDER_CHOICES = ["auto", "CPU", "CUDA", "CoreML", "DirectML", "ROCm"]
_FULL_NAMES = {
    "CPU": "CPUExecutionProvider",
    "CUDA": "CUDAExecutionProvider",
    "CoreML": "CoreMLExecutionProvider",
    "DirectML": "DmlExecutionProvider",
    "ROCm": "ROCMExecutionProvider",
}
_cache: dict[tuple, object] = comfy_adapter.ResidentCache("ONNX sessions")
_lock = threading.Lock()


def providers_for(choice: str) -> list[str]:
    """The provider list for a widget choice; "auto" takes the first accelerator this onnxruntime
    build offers, then the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if choice == "auto":
        wanted = [p for p in ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider",
                              "DmlExecutionProvider") if p in available]
    else:
        if choice not in _FULL_NAMES:
            raise ValueError(f"unknown provider '{choice}', expected one of {PROVIDER_CHOICES}")
        wanted = [_FULL_NAMES[choice]]
    return wanted + ["CPUExecutionProvider"] if "CPUExecutionProvider" not in wanted else wanted


def cached(kind: str, path: str | os.PathLike, provider: str, factory):
    """``factory(path, providers)`` once per (kind, file, its mtime, provider choice)."""
    p = Path(path).resolve()
    key = (kind, str(p), p.stat().st_mtime_ns, provider)
    with _lock:
        obj = _cache.get(key)
        if obj is None:
            obj = factory(str(p), providers_for(provider))
            _cache[key] = obj
        return obj


def session_provider(session) -> str:
    """The provider a session really runs on (its first one)."""
    got = session.get_providers()
    return got[0] if got else "unknown"


def clear() -> None:
    with _lock:
        _cache.clear()
