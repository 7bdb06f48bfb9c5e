"""Source face → identity: ArcFace embedding and CLIP ViT-H features of the aligned face crop.

Reference numerics (tencent-ailab IP-Adapter, ``ip_adapter_faceid.py``):
- ``embedding``: InsightFace ``normed_embedding`` (ArcFace on the 112 norm_crop, L2-normalised).
- CLIP input: ``norm_crop(image, kps, 224)`` — the aligned face, never the whole photo — then CLIP
  preprocessing (short side 224 bicubic antialias, centre crop, mean/std below).
- ``clip_hidden``: penultimate hidden states of CLIP-ViT-H-14 (output of layer 31 of 32, no
  post-layernorm), (n, 257, 1280).
- Unconditional CLIP convention — **"zero-pixels"** (the reference's): the CLIP of an all-zero
  *normalised* pixel tensor, ``image_encoder(torch.zeros_like(pixel_values))``. In ComfyUI, whose
  CLIP_VISION normalises internally, that tensor is produced by an image filled with the CLIP mean
  colour. (IPAdapter_plus encodes a black image instead; the seed used zero hidden states.)
- Several source images: embeddings and CLIP features are averaged (embedding re-normalised), so
  the identity is computed once per source image and reused.

Two CLIP backends behind :class:`ClipEncoder`: ComfyUI's own CLIP_VISION (``encode_image``) inside
ComfyUI, and a transformers ``CLIPVisionModelWithProjection`` built from the same safetensors file
(HF key layout) outside it, so CI runs the same code path.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..faces import align

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224
UNCOND_CONVENTION = "zero-pixels"  # CLIP(all-zero normalised pixel tensor), as the reference does
FORMAT = "i2p-identity-v1"


# --------------------------------------------------------------------------------------- identity
@dataclass
class Identity:
    """What a source face contributes; any field may be None when the mode does not need it."""

    embedding: torch.Tensor | None = None  # (n, 512) ArcFace, L2-normalised
    clip_hidden: torch.Tensor | None = None  # (n, 257, W) penultimate CLIP hidden states
    clip_uncond_hidden: torch.Tensor | None = None  # (1, 257, W) CLIP of the uncond input
    clip_embeds: torch.Tensor | None = None  # (n, P) CLIP image_embeds (plain adapter)
    sources: int = 1
    meta: dict = field(default_factory=dict)

    def require(self, name: str) -> torch.Tensor:
        value = getattr(self, name)
        if value is None:
            from ..errors import I2PError

            what = {"embedding": "an ArcFace embedding (FACES from the face analyzer)",
                    "clip_hidden": "CLIP features (connect clip_vision)",
                    "clip_uncond_hidden": "CLIP features (connect clip_vision)",
                    "clip_embeds": "CLIP image embeds (connect clip_vision)"}[name]
            raise I2PError("I2P Apply Identity", "identity", f"this identity has no {what}, which the "
                           "chosen mode needs.", "re-encode the identity with the inputs that mode needs.")
        return value

    def averaged(self) -> "Identity":
        """One identity from several source images (mean; embedding re-normalised)."""
        def mean(t):
            return None if t is None else t.float().mean(0, keepdim=True)

        emb = mean(self.embedding)
        if emb is not None:
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return Identity(emb, mean(self.clip_hidden), self.clip_uncond_hidden, mean(self.clip_embeds),
                        self.sources, dict(self.meta, averaged=str(self.sources)))


# ------------------------------------------------------------------------------------------ crops
def aligned_face_crop(image: np.ndarray, kps: np.ndarray, size: int = CLIP_SIZE) -> np.ndarray:
    """The reference CLIP input: insightface's ``norm_crop`` (ArcFace template scaled to ``size``, black
    outside the photo)."""
    return align.warp(image, align.arcface_affine(kps, size), size, border="zero")


def loose_face_crop(image: np.ndarray, bbox, size: int = CLIP_SIZE, scale: float = 2.0) -> np.ndarray:
    """Face with hair and some context: a square ``scale`` times the box, raised to include the hair;
    antialiased (the square is usually several times the crop size)."""
    x1, y1, x2, y2 = [float(v) for v in bbox[:4]]
    side = max(x2 - x1, y2 - y1) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.1 * side
    m = np.array([[size / side, 0, size / 2 - cx * size / side],
                  [0, size / side, size / 2 - cy * size / side]], dtype=np.float64)
    return align.warp(image, m, size, smooth=True)


def mean_colour_image(size: int = CLIP_SIZE) -> torch.Tensor:
    """An IMAGE (1, size, size, 3) whose CLIP-normalised pixels are all zero: the uncond input."""
    return torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 1, 1, 3).expand(1, size, size, 3).contiguous()


def clip_preprocess(images: torch.Tensor, size: int = CLIP_SIZE) -> torch.Tensor:
    """IMAGE (B,H,W,3) in [0,1] → normalised pixel_values (B,3,size,size), as CLIP was trained."""
    x = images.float().permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    if (nh, nw) != (h, w):
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top:top + size, left:left + size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ------------------------------------------------------------------------------------------- CLIP
class ClipEncoder:
    """``encode(images IMAGE (B,H,W,3) in [0,1]) -> (penultimate hidden (B,S,W), image_embeds (B,P))``;
    ``encode_uncond()`` → the same for the reference's unconditional input."""

    name = "CLIP"
    hidden_size: int | None = None
    projection_dim: int | None = None

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode_uncond(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class ComfyClipEncoder(ClipEncoder):
    """ComfyUI's CLIP_VISION (core CLIPVisionLoader): it resizes, crops and normalises itself."""

    def __init__(self, clip_vision, name: str = "CLIP_VISION"):
        self.cv = clip_vision
        self.name = name
        cfg = getattr(clip_vision, "config", {}) or {}
        self.hidden_size = cfg.get("hidden_size")
        self.projection_dim = cfg.get("projection_dim")

    def encode(self, images):
        out = self.cv.encode_image(images.float())
        return out["penultimate_hidden_states"].float().cpu(), out["image_embeds"].float().cpu()

    def encode_uncond(self):
        """Zero normalised pixels straight into the vision tower: ``encode_image`` rounds its input to
        8-bit levels, so no IMAGE normalises to exactly zero (the mean colour is off by ~0.003)."""
        from .. import comfy_adapter

        mm = comfy_adapter.comfy_module("comfy.model_management")
        model = getattr(self.cv, "model", None)
        if mm is None or model is None or not hasattr(self.cv, "patcher"):
            return self.encode(mean_colour_image())
        mm.load_model_gpu(self.cv.patcher)
        size = int(getattr(self.cv, "image_size", CLIP_SIZE))
        zeros = torch.zeros(1, 3, size, size, device=self.cv.load_device)
        with torch.no_grad():
            out = model(pixel_values=zeros, intermediate_output=-2)
        return out[1].float().cpu(), out[2].float().cpu()


class HFClipEncoder(ClipEncoder):
    """transformers' CLIP vision tower with projection, from a safetensors file in HF key layout."""

    def __init__(self, model, name: str):
        self.model = model.eval()
        self.name = name
        self.hidden_size = model.config.hidden_size
        self.projection_dim = model.config.projection_dim

    @torch.no_grad()
    def _run(self, pixel_values: torch.Tensor):
        out = self.model(pixel_values=pixel_values.to(self.model.dtype), output_hidden_states=True)
        return out.hidden_states[-2].float(), out.image_embeds.float()

    def encode(self, images):
        return self._run(clip_preprocess(images))

    def encode_uncond(self):
        return self._run(torch.zeros(1, 3, CLIP_SIZE, CLIP_SIZE))


def load_hf_clip_vision(path: str | os.PathLike) -> HFClipEncoder:
    """Build ``CLIPVisionModelWithProjection`` with its config inferred from the tensor shapes."""
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    sd = load_file(str(path))
    hidden = sd["vision_model.embeddings.class_embedding"].shape[0]
    patch = sd["vision_model.embeddings.patch_embedding.weight"].shape[-1]
    n_pos = sd["vision_model.embeddings.position_embedding.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("vision_model.encoder.layers."))
    inter = sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
    proj = sd["visual_projection.weight"].shape[0]
    heads = 16 if hidden >= 1024 else max(1, hidden // 32)
    cfg = CLIPVisionConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                           num_attention_heads=heads, patch_size=patch, projection_dim=proj,
                           image_size=int(round((n_pos - 1) ** 0.5)) * patch, hidden_act="gelu",
                           layer_norm_eps=1e-5)
    model = CLIPVisionModelWithProjection(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ValueError(f"CLIP vision file {Path(path).name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return HFClipEncoder(model.float(), Path(path).name)


def clip_encoder(clip_vision) -> ClipEncoder | None:
    """Wrap whatever arrived on the clip_vision input (ComfyUI CLIP_VISION or one of ours)."""
    if clip_vision is None or isinstance(clip_vision, ClipEncoder):
        return clip_vision
    return ComfyClipEncoder(clip_vision)


# ---------------------------------------------------------------------------------------- encode
def encode_identity(images: list[np.ndarray], faces: list, encoder: ClipEncoder | None,
                    need_embedding: bool, clip_input: str = "face", blend: float = 0.5) -> Identity:
    """Identity from one selected face per source image.

    ``clip_input``: "face" (aligned crop: FaceID Plus), "hair" (face with hair: standard mode),
    "blend" (CLIP blend mode: both crops encoded, their hidden states and image embeds mixed with
    ``blend`` as the loose crop's share), or "none".
    """
    emb = None
    if need_embedding:
        vecs = []
        for f in faces:
            if f.embedding is None:
                raise ValueError("face without an ArcFace embedding")
            e = np.asarray(f.embedding, dtype=np.float32)
            vecs.append(e / max(float(np.linalg.norm(e)), 1e-8))
        emb = torch.from_numpy(np.stack(vecs))
    ident = Identity(embedding=emb, sources=len(faces), meta={"clip_input": clip_input})
    if clip_input != "none" and encoder is not None:
        aligned = [aligned_face_crop(i, f.kps) for i, f in zip(images, faces)] if clip_input != "hair" else []
        loose = [loose_face_crop(i, f.bbox) for i, f in zip(images, faces)] if clip_input != "face" else []
        hidden, embeds = encoder.encode(torch.from_numpy(np.stack(aligned + loose).astype(np.float32) / 255.0))
        if clip_input == "blend":
            # the aligned face and the loose crop differ in geometry (eyes ~70 vs ~40 px apart at 224):
            # a pixel mix would be a double exposure, so both are encoded and their features mixed
            n = len(aligned)
            hidden = (1.0 - blend) * hidden[:n] + blend * hidden[n:]
            embeds = (1.0 - blend) * embeds[:n] + blend * embeds[n:]
        uhidden, _ = encoder.encode_uncond()
        ident.clip_hidden, ident.clip_embeds, ident.clip_uncond_hidden = hidden, embeds, uhidden[:1]
        ident.meta.update(clip=encoder.name, uncond=UNCOND_CONVENTION)
    return ident


# ------------------------------------------------------------------------------------ save / load
_FIELDS = ("embedding", "clip_hidden", "clip_uncond_hidden", "clip_embeds")


def save_identity(identity: Identity, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write atomically (temp file in the same folder, then a rename): never a half-written file.
    An existing file is replaced only with ``overwrite``; otherwise the identity goes to the first free
    numbered name (``anna_00001.safetensors``). Returns where it went."""
    from safetensors.torch import save_file

    from ..paths import publish

    path = Path(path)
    tensors = {k: getattr(identity, k).float().contiguous().cpu() for k in _FIELDS if getattr(identity, k) is not None}
    if not tensors:
        raise ValueError("empty identity")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): str(v) for k, v in identity.meta.items()}
    meta.update(format=FORMAT, sources=str(identity.sources))
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        return publish(tmp, path, overwrite)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_identity(path: str | os.PathLike) -> Identity:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        if meta.get("format") != FORMAT:
            raise ValueError(f"{Path(path).name} is not an IP-to-Portrait identity file")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    sources = int(meta.pop("sources", "1"))
    meta.pop("format", None)
    return Identity(**{k: tensors.get(k) for k in _FIELDS}, sources=sources, meta=meta)
