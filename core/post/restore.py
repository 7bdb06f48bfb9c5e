"""Face restoration (GFPGAN v1.4 and other face-restoration models spandrel recognises).

Each selected face is aligned to the 512 FFHQ template from its 5 landmarks, restored, and pasted
back through a soft face-only mask. ComfyUI's own ``ImageUpscaleWithModel`` cannot do this (it
passes a channels-last view that GFPGAN rejects), so tensors here are made contiguous explicitly.
``strength`` blends restored and original on the face only; 0 returns the input unchanged.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import comfy_adapter
from ..faces import align
from ..errors import I2PError
from ..model_errors import model_file_errors
from ..faces.types import Face

NODE = "I2P Face Restore"
PRECISIONS = ["auto", "fp32", "bf16"]
_cache: dict[tuple, "Restorer"] = comfy_adapter.ResidentCache("face restorers")
_lock = threading.Lock()


def _fast_bf16(device) -> bool:
    """bf16 pays off on GPUs that support it and on CPUs with native bf16 (AVX512-BF16 / AMX): about
    1.8x faster for GFPGAN on this project's CPUs, with differences of a few levels out of 255."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


class Restorer:
    """A spandrel face-restoration model behind ComfyUI's memory management."""

    size = 512

    def __init__(self, path: Path, node: str = NODE, precision: str = "auto", input_name: str = "restore_model"):
        import spandrel
        import torch

        from ...models.manifest import id_for

        self.path = Path(path)
        loader = spandrel.ModelLoader()
        with model_file_errors(node, input_name, path, "a face-restoration model (torch zip or safetensors)",
                               id_for("facerestore_models", self.path.name), "facerestore_models"):
            state = loader.load_state_dict_from_file(str(path))
        try:
            descriptor = loader.load_from_state_dict(state)
        except Exception as exc:  # spandrel raises several types for unknown architectures
            if isinstance(exc, comfy_adapter.interrupt_exception_types()):
                raise
            raise I2PError(node, input_name, f"{self.path.name} is readable but no model spandrel knows "
                           f"({type(exc).__name__}).",
                           "use GFPGANv1.4.pth (or another face-restoration model) from models/facerestore_models.") from None
        if getattr(descriptor, "purpose", "") != "FaceSR":
            raise I2PError(node, input_name, f"{self.path.name} is a {descriptor.architecture.name} "
                           f"model ({descriptor.purpose}), not a face-restoration model.",
                           "pick GFPGAN v1.4, RestoreFormer or CodeFormer.")
        self.arch = descriptor.architecture.name
        device = comfy_adapter.torch_device()
        use_bf16 = precision == "bf16" or (precision == "auto" and descriptor.supports_bfloat16 and _fast_bf16(device))
        self.dtype = torch.bfloat16 if use_bf16 else torch.float32
        module = descriptor.model.eval().to(self.dtype)
        self.managed = comfy_adapter.ManagedModel(module, load_device=device)

    def restore_crop(self, crop: np.ndarray) -> np.ndarray:
        """Restore one 512x512 uint8 RGB aligned face."""
        import torch

        net = self.managed.load()
        dev = self.managed.load_device
        dtype = next(net.parameters()).dtype
        x = torch.from_numpy(np.ascontiguousarray(crop)).to(dev, torch.float32)
        x = (x.permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0).contiguous().to(dtype)
        with torch.inference_mode():
            if self.arch == "GFPGAN":
                y = net(x, return_rgb=False, randomize_noise=False)[0]
            else:
                y = net(x)
                y = y[0] if isinstance(y, (tuple, list)) else y
        y = ((y[0].float().clamp(-1, 1) + 1.0) * 127.5).permute(1, 2, 0).contiguous().cpu().numpy()
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)

    def describe(self) -> str:
        precision = "bf16" if "bfloat16" in str(self.dtype) else "fp32"
        return f"{self.arch} ({self.path.name}) on {self.managed.load_device}, {precision}"


def load_restorer(path: Path, node: str = NODE, precision: str = "auto", input_name: str = "restore_model") -> Restorer:
    """A cached restorer; ``node``/``input_name`` name the widget that picked the file in errors."""
    if precision not in PRECISIONS:
        raise I2PError(node, "precision", f"unknown precision '{precision}'.", f"use one of {PRECISIONS}.")
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime_ns, precision)
    with _lock:
        if key not in _cache:
            _cache[key] = Restorer(p, node, precision, input_name)
        return _cache[key]


@dataclass
class RestoreResult:
    image: np.ndarray
    mask: np.ndarray  # (H, W) union of the face masks actually applied


def restore_faces(image: np.ndarray, faces: list[Face], restorer: Restorer, strength: float = 1.0,
                  erode: float = 0.02, blur: float = 0.08, progress=None) -> RestoreResult:
    """Restore each face and blend ``strength`` of it in through the face mask."""
    strength = float(np.clip(strength, 0.0, 1.0))
    union = np.zeros(image.shape[:2], np.float32)
    if strength <= 0.0 or not faces:
        return RestoreResult(image.copy(), union)
    out = image
    size = restorer.size
    mask = align.face_mask(size, align.ffhq_template(size), erode, blur) * strength
    for face in faces:
        m = align.ffhq_affine(face.kps, size)
        restored = restorer.restore_crop(align.warp(out, m, size))
        pasted = align.paste(out, restored, m, mask)
        out = pasted.image
        union = np.maximum(union, pasted.mask)
        if progress is not None:
            progress.update(1)
    return RestoreResult(out, union)
