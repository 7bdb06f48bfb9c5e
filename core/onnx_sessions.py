"""ONNX Runtime sessions for the post-processing models: created once per (file, provider choice) and
reused across runs, reporting the execution provider each one really got (a CUDA request that fell
back to CPU shows up in the node's text output)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from . import comfy_adapter

#: user-facing provider name → onnxruntime provider ("auto" = the best this build offers). The ONE list:
#: every node with a provider widget offers ``PROVIDER_CHOICES``.
PROVIDERS = {
    "auto": None,
    "CPU": "CPUExecutionProvider",
    "CUDA": "CUDAExecutionProvider",
    "TensorRT": "TensorrtExecutionProvider",
    "ROCm": "ROCMExecutionProvider",
    "DirectML": "DmlExecutionProvider",
    "CoreML": "CoreMLExecutionProvider",
    "OpenVINO": "OpenVINOExecutionProvider",
}
PROVIDER_CHOICES = list(PROVIDERS)
_AUTO_ORDER = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider",
               "CoreMLExecutionProvider", "CPUExecutionProvider")
_cache: dict[tuple, object] = comfy_adapter.ResidentCache("ONNX sessions")
_lock = threading.Lock()


def resolve_providers(choice: str, node: str = "IP-to-Portrait", input_name: str = "provider"
                      ) -> tuple[list[str], list[str]]:
    """The provider list to request for a widget choice, plus notes for the user.

    "auto" takes the accelerators this onnxruntime build offers, then the CPU. An explicit choice the
    build lacks runs on the CPU with a note that says so (and how to get CUDA), rather than leaving
    onnxruntime to fall back silently."""
    import onnxruntime as ort

    from .errors import I2PError

    if choice not in PROVIDERS:
        raise I2PError(node, input_name, f"unknown provider '{choice}'.", f"choose one of {', '.join(PROVIDERS)}.")
    available = ort.get_available_providers()
    notes: list[str] = []
    want = PROVIDERS[choice]
    if want is None:
        chosen = [p for p in _AUTO_ORDER if p in available] or ["CPUExecutionProvider"]
    elif want in available:
        chosen = [want] + (["CPUExecutionProvider"] if want != "CPUExecutionProvider" else [])
    else:
        chosen = ["CPUExecutionProvider"]
        hint = (" Install onnxruntime-gpu in place of onnxruntime (pip uninstall -y onnxruntime "
                "onnxruntime-gpu; pip install onnxruntime-gpu)." if choice in ("CUDA", "TensorRT") else "")
        notes.append(f"{choice} requested but this onnxruntime offers only {', '.join(available)}: "
                     f"running on CPU.{hint}")
    return chosen, notes


def cached(kind: str, path: str | os.PathLike, provider: str, factory, node: str = "IP-to-Portrait"):
    """``factory(path, providers)`` once per (kind, file, its mtime, provider choice)."""
    p = Path(path).resolve()
    key = (kind, str(p), p.stat().st_mtime_ns, provider)
    with _lock:
        obj = _cache.get(key)
        if obj is None:
            obj = factory(str(p), resolve_providers(provider, node)[0])
            _cache[key] = obj
        return obj


def session_provider(session) -> str:
    """The provider a session really runs on (its first one)."""
    got = session.get_providers()
    return got[0] if got else "unknown"


def clear() -> None:
    with _lock:
        _cache.clear()
