"""The identity stage end to end: source faces → identity → tokens → patched MODEL clone.

Kept apart from the node so it runs (and is tested) without ComfyUI: the MODEL only needs
``clone()``, ``set_model_attn2_replace`` and ``model_options`` (a ComfyUI ModelPatcher, or a fake).
"""
from __future__ import annotations

import numpy as np

from .. import comfy_adapter
from ..errors import I2PError
from ..model_family import of_model
from . import contract
from .attention import IdentityPatch, patch_model, sdpa
from .encoding import Identity, clip_encoder, encode_identity
from .stop_at import describe

NODE = "I2P Apply Identity"

# mode id -> (label, adapter family needed, CLIP input, needs ArcFace)
MODES = {
    "faceid_plus_v2": ("FaceID Plus v2", "faceid_plus", "face", True),
    "faceid": ("FaceID", "faceid", "none", True),
    "standard": ("standard (CLIP image prompt)", "plain", "hair", False),
    "clip_blend": ("CLIP blend (face + hair)", "plain", "blend", False),
    "simple": ("simple (no adapter)", None, "none", False),
}
ADAPTER_FOR_MODE = {"faceid_plus": "ip-adapter-faceid-plusv2_sdxl.bin", "faceid": "ip-adapter-faceid_sdxl.bin",
                    "plain": "ip-adapter_sdxl_vit-h.safetensors"}


def model_context_dim(model) -> int | None:
    """The UNet's cross-attention width from a ComfyUI MODEL (2048 for SDXL), None if unknown."""
    try:
        return int(model.model.model_config.unet_config["context_dim"])
    except (AttributeError, KeyError, TypeError):
        return None


def refuse_non_unet(model) -> None:
    """The identity patch replaces SDXL's cross-attention (attn2) layers; a DiT / flow MODEL (FLUX.2
    [klein], Qwen-Image-Edit, FLUX.1 ...) has none, so patching it would do nothing correct, silently.
    Refuse it with the way to identity on those models instead."""
    family = of_model(model)
    if not family.unet:
        raise I2PError(NODE, "model", f"the MODEL is {family.name}, a DiT / flow model; the identity patch only "
                       "fits SDXL's UNet cross-attention and would do nothing correct here.",
                       "for FLUX.2 / Qwen-Image-Edit, give the source face to I2P Face Inpaint as reference "
                       "conditioning (ReferenceLatent or TextEncodeQwenImageEditPlus) and lock identity with the "
                       "face swap; or load an SDXL checkpoint for this node (mode 'simple' passes any MODEL through).")


def text_attention():
    """ComfyUI's optimized_attention inside ComfyUI (the user's attention backend, precision and
    overrides apply to the layers we replace), plain SDPA outside."""
    attn_mod = comfy_adapter.comfy_module("comfy.ldm.modules.attention")
    if attn_mod is None:
        return sdpa

    def attention(q, k, v, heads, _opt=attn_mod.optimized_attention, **options):
        return _opt(q, k, v, heads, **options)

    return attention


def pick_source_faces(images: list[np.ndarray], faces=None, analyzer=None) -> list:
    """One face per source image: the first selected face of FACES, or the largest the analyzer finds."""
    chosen = []
    if faces is not None and len(faces) not in (1, len(images)):
        raise I2PError(NODE, "faces", f"FACES holds {len(faces)} image(s) but 'image' has {len(images)}.",
                       "detect the faces on the same source image batch that goes into 'image'.")
    for i, img in enumerate(images):
        if faces is not None:
            fset = faces.for_image(i)
            if not fset.faces:
                raise I2PError(NODE, "image", f"no face was found (or selected) in source image {i + 1}; I2P "
                               "Detect Faces passed it through.", "use a photo with a clearly visible face, or "
                               "lower the detector's threshold / relax its filters.")
            if tuple(fset.image_size) != tuple(img.shape[:2]):
                raise I2PError(NODE, "faces", f"source image {i + 1} is {img.shape[1]}x{img.shape[0]} but its faces "
                               f"were detected on a {fset.image_size[1]}x{fset.image_size[0]} image.",
                               "detect the faces on the same image that goes into 'image'.")
            chosen.append(fset.faces[0])
        elif analyzer is not None:
            found = analyzer.detect(img)
            if not found:
                raise I2PError(NODE, "image", f"no face found in source image {i + 1}.",
                               "use a photo where the face is visible and at least ~64 px wide.")
            chosen.append(max(found, key=lambda f: f.size))
        else:
            raise I2PError(NODE, "faces", "the mode needs the source face: connect 'faces' (from the face "
                           "analyzer) or 'analyzer'.", "connect the 'faces' output of I2P Detect Faces to 'faces', "
                           "or the 'analyzer' output of I2P Face Analyzer Loader to 'analyzer'.")
    return chosen


_CACHE: dict = comfy_adapter.ResidentCache("encoded identities")  # encoded identities: a widget change (weight, stop_at) does not re-run CLIP
_CACHE_SIZE = 8


def _cache_key(mode, images, chosen, encoder, average, clip_blend):
    import hashlib

    h = hashlib.sha1()
    for img, f in zip(images, chosen):
        h.update(np.ascontiguousarray(img).tobytes())
        h.update(np.asarray(f.kps, np.float32).tobytes())
        if f.embedding is not None:
            h.update(np.asarray(f.embedding, np.float32).tobytes())
    return (mode, h.hexdigest(), id(getattr(encoder, "cv", encoder)), bool(average), float(clip_blend))


def build_identity(mode: str, images: list[np.ndarray], faces=None, analyzer=None, clip_vision=None,
                   average: bool = True, clip_blend: float = 0.5) -> Identity:
    """Encode once per (source images, faces, CLIP model, mode): repeated runs reuse the result."""
    _, family, clip_input, need_emb = MODES[mode]
    encoder = clip_encoder(clip_vision)
    if clip_input != "none" and encoder is None:
        raise I2PError(NODE, "clip_vision", f"mode '{MODES[mode][0]}' needs a CLIP vision model.",
                       "load CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors with the core Load CLIP Vision node.")
    if need_emb:
        from ..faces.permissive import refuse_auraface

        refuse_auraface(faces, NODE, "faces", f"the {MODES[mode][0]} adapter")
    chosen = pick_source_faces(images, faces, analyzer)
    if need_emb and any(f.embedding is None for f in chosen):
        raise I2PError(NODE, "faces", "the selected faces carry no ArcFace embedding.",
                       "use a face analyzer pack with a recognition model (buffalo_l).")
    key = _cache_key(mode, images, chosen, encoder, average, clip_blend)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is getattr(encoder, "cv", encoder):
        return hit[1]
    ident = encode_identity(images, chosen, encoder, need_emb, clip_input, clip_blend)
    ident.meta["mode"] = mode
    ident = ident.averaged() if average and ident.sources > 1 else ident
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (getattr(encoder, "cv", encoder), ident)
    return ident


def apply_identity(model, mode: str, weight: float, start_at: float, stop_at: float, adapter=None,
                   identity: Identity | None = None, images: list[np.ndarray] | None = None, faces=None,
                   analyzer=None, clip_vision=None, shortcut_weight: float = 1.0, mask=None,
                   average: bool = True, clip_blend: float = 0.5, steps: int = 20):
    """Returns (patched MODEL clone, Identity or None, report text)."""
    from ...models.ipadapter import check_for_clip, check_for_model, check_identity

    if mode not in MODES:
        raise I2PError(NODE, "mode", f"unknown mode '{mode}'.", f"pick one of {', '.join(MODES)}.")
    label, family, _clip_input, _ = MODES[mode]
    if start_at >= stop_at and mode != "simple":
        raise I2PError(NODE, "stop_at", f"stop_at ({stop_at:g}) must be above start_at ({start_at:g}).",
                       "raise stop_at or lower start_at.")
    info = {"mode": mode, "weight": float(weight), "start_at": float(start_at), "stop_at": float(stop_at),
            "masked": mask is not None}
    if mode == "simple":  # changes nothing in the MODEL: fine on any architecture
        m = model.clone()
        contract.set_identity_info(m, dict(info, weight=0.0))
        return m, identity, ("simple mode: the MODEL is not changed; the identity comes from the face swap "
                             "stage.")
    refuse_non_unet(model)
    if adapter is None:
        raise I2PError(NODE, "adapter", f"mode '{label}' needs an IP-Adapter.",
                       f"connect I2P Identity Adapter Loader with {ADAPTER_FOR_MODE[family]}.")
    if adapter.family != family:
        raise I2PError(NODE, "adapter", f"mode '{label}' needs a {ADAPTER_FOR_MODE[family]}-type adapter but "
                       f"'{adapter.name}' is {adapter.title}.",
                       f"load {ADAPTER_FOR_MODE[family]}, or pick the mode that fits this adapter.")
    check_for_model(adapter, model_context_dim(model), NODE)
    encoder = clip_encoder(clip_vision)
    if encoder is not None and adapter.uses_clip:
        check_for_clip(adapter, encoder.hidden_size, encoder.projection_dim, encoder.name, NODE)
    if identity is None:
        if not images:
            raise I2PError(NODE, "image", "no source face: connect 'image' (+ faces or analyzer) or 'identity'.",
                           "connect the face photo, or an identity from I2P Load Face Identity.")
        identity = build_identity(mode, images, faces, analyzer, encoder, average, clip_blend)
    elif average and identity.sources > 1 and (identity.embedding is not None and identity.embedding.shape[0] > 1):
        identity = identity.averaged()
    check_identity(adapter, identity, NODE)
    cond, uncond = adapter.tokens(identity, shortcut_weight)

    attention = text_attention()
    mask_t = None
    if mask is not None:
        import torch

        mask_t = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
        if mask_t.ndim == 4:
            mask_t = mask_t[..., 0]
    info.update(adapter=adapter.name, v2=adapter.is_v2, shortcut_weight=float(shortcut_weight),
                tokens=int(cond.shape[1]), sources=int(identity.sources))
    patch = IdentityPatch(cond, uncond, adapter.to_k_ip, adapter.to_v_ip, weight, start_at, stop_at,
                          mask=mask_t, attention=attention, info=info)
    patched, message = patch_model(model, patch)
    lines = [f"{label} with {adapter.title}: weight {weight:g}"
             + (f", v2 shortcut {shortcut_weight:g}" if adapter.is_v2 else ""),
             f"{identity.sources} source image(s)" + (", averaged" if identity.meta.get("averaged") else ""),
             f"{describe(start_at, stop_at, steps)} (if the sampler runs {steps} steps; the count follows the "
             "steps really run, for any scheduler and denoise)",
             "attention mask: " + ("on" if mask_t is not None else "off"),
             f"{cond.shape[1]} identity tokens x 70 SDXL cross-attention layers"]
    if message:
        lines.append(message)
    return patched, identity, "\n".join(lines)
