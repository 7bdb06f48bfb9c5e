"""Content-safety gate for the face swap: an NSFW image classifier (Falconsai/nsfw_image_detection,
a ViT-base with labels ``normal`` / ``nsfw``, Apache-2.0) refuses explicit source or target images.

The model is read from ``models/nsfw_detector/vit-base-nsfw-detector/`` (``config.json`` +
``model.safetensors``) with transformers, never from the hub. If the files are missing the gate does
not silently pass: the swap stops with a message saying how to get them, or how to switch the gate
off explicitly.

Preprocessing follows the model's image processor: RGB resized to ``config.image_size`` (224),
scaled to [0, 1], normalised with mean 0.5 / std 0.5.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import comfy_adapter
from ..errors import I2PError
from ..model_errors import download_command, model_file_errors

DEFAULT_THRESHOLD = 0.80  # refuse when P(nsfw) >= this
FOLDER = "nsfw_detector"
SUBDIR = "vit-base-nsfw-detector"
_cache: dict[tuple, "NsfwClassifier"] = comfy_adapter.ResidentCache("content-safety classifiers")
_lock = threading.Lock()


class NsfwClassifier:
    def __init__(self, folder: Path, node: str):
        from transformers import ViTForImageClassification

        with model_file_errors(node, "content_safety", folder, "a ViT image classifier (config.json and "
                               "model.safetensors)", "nsfw-vit nsfw-vit-config", FOLDER):
            model = ViTForImageClassification.from_pretrained(str(folder), local_files_only=True)
        labels = {int(k): str(v).lower() for k, v in model.config.id2label.items()}
        hits = [i for i, name in labels.items() if "nsfw" in name or "porn" in name or "explicit" in name]
        if not hits:
            raise I2PError(node, "content_safety", f"the classifier in models/{FOLDER}/{SUBDIR} has no 'nsfw' "
                           f"label (labels: {', '.join(sorted(labels.values()))}).",
                           f"download the intended one: {download_command('nsfw-vit nsfw-vit-config')} --force.")
        self.nsfw_index = hits[0]
        self.image_size = int(model.config.image_size)
        self.managed = comfy_adapter.ManagedModel(model.eval())

    def probability(self, image: np.ndarray) -> float:
        """P(nsfw) for one uint8 RGB image."""
        import torch

        x = (_resize(image, self.image_size).astype(np.float32) / 255.0 - 0.5) / 0.5
        net = self.managed.load()
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.managed.load_device)
        with torch.inference_mode():
            logits = net(pixel_values=t.to(next(net.parameters()).dtype)).logits
        return float(torch.softmax(logits.float(), dim=-1)[0, self.nsfw_index])


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8 RGB as the model's ViTImageProcessor makes it: PIL bilinear, which widens its
    filter when shrinking (antialiased; cv2's INTER_LINEAR samples 4 pixels and aliases)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image, np.uint8))
    return np.asarray(pil.resize((size, size), resample=Image.Resampling.BILINEAR))


def find_model_dir() -> Path | None:
    d = comfy_adapter.find_model(FOLDER, SUBDIR)
    if d is None or not (d / "config.json").is_file() or not (d / "model.safetensors").is_file():
        return None
    return d


def load_classifier(node: str) -> NsfwClassifier:
    folder = find_model_dir()
    if folder is None:
        raise I2PError(node, "content_safety",
                       f"the content-safety model is missing (models/{FOLDER}/{SUBDIR}/config.json and model.safetensors).",
                       f"run: {download_command('nsfw-vit nsfw-vit-config')} "
                       "(or copy Falconsai/nsfw_image_detection's config.json and model.safetensors there). "
                       "Only if you have your own safeguards, set content_safety to 'off'.")
    key = (str(folder.resolve()), (folder / "model.safetensors").stat().st_mtime_ns)
    with _lock:
        if key not in _cache:
            _cache[key] = NsfwClassifier(folder, node)
        return _cache[key]


@dataclass
class GateReport:
    probabilities: dict[str, list[float]]

    def text(self) -> str:
        parts = [f"{name}: " + ", ".join(f"{p:.2f}" for p in ps) for name, ps in self.probabilities.items()]
        return "content safety P(nsfw) - " + "; ".join(parts)


def check(images: dict[str, list[np.ndarray]], node: str, threshold: float = DEFAULT_THRESHOLD) -> GateReport:
    """Raise I2PError if any image reaches ``threshold``; ``images`` maps an input name to its batch."""
    clf = load_classifier(node)
    probs: dict[str, list[float]] = {}
    for name, batch in images.items():
        probs[name] = [clf.probability(img) for img in batch]
        for i, p in enumerate(probs[name]):
            if p >= threshold:
                raise I2PError(node, name, f"image {i} was classified as explicit (P(nsfw) = {p:.2f} >= "
                               f"threshold {threshold:.2f}); IP-to-Portrait does not swap faces into or out of "
                               "explicit images.", "use a different image.")
    return GateReport(probs)
