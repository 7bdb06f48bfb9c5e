"""Ghost (ai-forever/ghost, Apache-2.0) as a swap model: AEI-Net at 256 px with its own ArcFace.

Ghost aligns every face as its training data was cut: insightface 0.2.1's ``estimate_norm(kps, 224,
mode='None')``, i.e. the least-error one of five pose templates (left profile .. right profile) at
224 px, per face. The target crop is taken at the generator's 256 px with that same alignment, the
paste mask follows the chosen template, and the source identity is Ghost's iresnet100 on the source's
own 224 crop halved to 112, all in [-1, 1] RGB.
Torch modules are wrapped in ``ManagedModel`` so ComfyUI can move and evict them.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .. import comfy_adapter
from ..faces import align
from ..errors import I2PError
from ..model_errors import model_file_errors
from ..paths import display
from ..faces.types import Face

NODE = "I2P Face Swap"
_ALIGN = 224
_cache: dict[tuple, "GhostSwapper"] = comfy_adapter.ResidentCache("Ghost swappers")
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

    @staticmethod
    def align_224(kps: np.ndarray) -> tuple[np.ndarray, int]:
        """Ghost's alignment at 224: (affine, index of the chosen pose template in align.POSE_NAMES)."""
        return align.best_template_affine(kps, align.pose_templates(_ALIGN))

    @classmethod
    def crop_affine(cls, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The generator's 256 crop cut with the 224 alignment, and the chosen template at 256."""
        m, pose = cls.align_224(kps)
        k = cls.crop_size / _ALIGN
        return m * k, align.pose_templates(_ALIGN)[pose] * k

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
        crop = align.warp(image, self.align_224(face.kps)[0], _ALIGN, border="zero")  # as Ghost's crop
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
