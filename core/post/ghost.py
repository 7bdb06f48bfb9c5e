"""Ghost (ai-forever/ghost, Apache-2.0) as a swap model: AEI-Net at 256 px with its own ArcFace.

Ghost aligns faces with the ArcFace template at 224 px and resizes the crop to 256 for the
generator; the source identity is its iresnet100 on the 224 crop halved to 112, both in [-1, 1] RGB.
Torch modules are wrapped in ``ManagedModel`` so ComfyUI can move and evict them.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .. import comfy_adapter
from ..faces import align as face_paste
from ..errors import I2PError, model_file_errors
from ..paths import display
from ..faces.types import Face

NODE = "I2P Face Swap"
_ALIGN = 224
_cache: dict[tuple, "GhostSwapper"] = {}
_lock = threading.Lock()


def _load(path: Path, builder, what: str):
    """Read (a damaged file is one error), then build (a readable file of another kind is another)."""
    from ...models.manifest import id_for

    with model_file_errors(NODE, "swap_model", path, f"a {what} state dict", id_for("ghost", path.name), "ghost"):
        sd = comfy_adapter.load_torch_file(path, safe_load=True)
    try:
        return builder(sd)
    except (ValueError, RuntimeError, KeyError) as exc:  # ValueError: our own words; others: torch's shapes
        why = str(exc)[:200] if isinstance(exc, ValueError) else "its tensors do not fit the architecture"
        raise I2PError(NODE, "swap_model", f"{display(path, 'ghost')} is not a {what} file ({why}).",
                       "use the published G_unet_2blocks.pth and backbone.pth of ai-forever/ghost.") from None


class GhostSwapper:
    crop_size = 256
    license_folder = "ghost"

    def __init__(self, generator_path: Path, arcface_path: Path):
        from ...models import ghost

        self.path = str(generator_path)
        self.generator = comfy_adapter.ManagedModel(_load(generator_path, ghost.build_aei_net, "Ghost AEI-Net"))
        self.arcface = comfy_adapter.ManagedModel(_load(arcface_path, ghost.build_iresnet, "ArcFace iresnet"))
        self.template = face_paste.arcface_template(_ALIGN) * (self.crop_size / _ALIGN)

    def affine(self, kps: np.ndarray) -> np.ndarray:
        m = face_paste.arcface_affine(kps, _ALIGN)
        return m * (self.crop_size / _ALIGN)

    @staticmethod
    def _to_tensor(img: np.ndarray, device):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(img)).to(device=device, dtype=torch.float32)
        return (t.permute(2, 0, 1).unsqueeze(0).contiguous() / 127.5) - 1.0

    def source_identity(self, image: np.ndarray | None, face: Face) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if image is None:
            raise I2PError(NODE, "source_image", "Ghost needs the source image for its own ArcFace.",
                           "connect the source IMAGE.")
        crop = face_paste.warp(image, face_paste.arcface_affine(face.kps, _ALIGN), _ALIGN)
        net = self.arcface.load()
        with torch.inference_mode():
            x = self._to_tensor(crop, self.arcface.load_device)
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True)
            return net(x).float().cpu().numpy()

    def swap(self, crop: np.ndarray, identity: np.ndarray) -> np.ndarray:
        import torch

        net = self.generator.load()
        dev = self.generator.load_device
        with torch.inference_mode():
            y = net(self._to_tensor(crop, dev), torch.from_numpy(identity).to(dev, torch.float32))
        y = ((y[0].permute(1, 2, 0).float().cpu().numpy() + 1.0) * 127.5)
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)

    def describe(self) -> str:
        return f"Ghost AEI-Net ({Path(self.path).name}) on {self.generator.load_device}"


def load_ghost(generator_path: Path, arcface_path: Path) -> GhostSwapper:
    key = tuple((str(p), p.stat().st_mtime_ns) for p in (Path(generator_path), Path(arcface_path)))
    with _lock:
        if key not in _cache:
            _cache[key] = GhostSwapper(Path(generator_path), Path(arcface_path))
        return _cache[key]
