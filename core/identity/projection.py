"""Identity → the adapter's image tokens, with diffusers' own projection classes.

diffusers converts the original IP-Adapter key layout into ``ImageProjection`` (plain adapter),
``IPAdapterFaceIDImageProjection`` (FaceID) and ``IPAdapterFaceIDPlusImageProjection`` (FaceID Plus),
inferring the widths from the tensor shapes; we use that converter rather than a second copy of it.

Token formulas (reference: tencent-ailab IP-Adapter):
- FaceID Plus: ``x = LN(MLP(id))`` (4 tokens), ``r = resampler(x, clip_penultimate)``;
  v2: ``tokens = x + s * r`` (s = the shortcut weight), v1: ``tokens = r``.
- FaceID: ``tokens = LN(MLP(id))``.
- plain: ``tokens = LN(Linear(clip_image_embeds))``.
Unconditional tokens use the same network on the reference's uncond inputs (zero ArcFace
embedding, CLIP of an all-zero normalised pixel tensor, zero image_embeds); see identity_encoding.
"""
from __future__ import annotations

import torch


def build_projection(image_proj: dict) -> torch.nn.Module:
    """A diffusers projection module loaded (strictly) from an original ``image_proj`` state dict."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin

    sd = {k: v.float() for k, v in image_proj.items()}
    # The converter is an instance method that does not use its instance.
    module = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(None, sd, low_cpu_mem_usage=False)
    return module.float().eval()


@torch.no_grad()
def project(adapter, identity, shortcut_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond_tokens, uncond_tokens), each (n, T, D) float32, n = identities kept in ``identity``."""
    from ...models.ipadapter import FACEID, FACEID_PLUS, PLAIN

    proj = adapter.projection()
    if adapter.family == FACEID_PLUS:
        emb = identity.require("embedding")
        clip = identity.require("clip_hidden")
        uclip = identity.require("clip_uncond_hidden")
        cond = _plus(proj, emb, clip, adapter.is_v2, shortcut_weight)
        uncond = _plus(proj, torch.zeros_like(emb[:1]), uclip[:1], adapter.is_v2, shortcut_weight)
    elif adapter.family == FACEID:
        emb = identity.require("embedding")
        cond = proj(emb.float())
        uncond = proj(torch.zeros_like(emb[:1]).float())
    elif adapter.family == PLAIN:
        emb = identity.require("clip_embeds")
        cond = proj(emb.float())
        uncond = proj(torch.zeros_like(emb[:1]).float())
    else:  # pragma: no cover - load_ipadapter refuses other families
        raise ValueError(adapter.family)
    return cond.float(), uncond.float()


def _plus(proj, emb: torch.Tensor, clip: torch.Tensor, v2: bool, scale: float) -> torch.Tensor:
    # diffusers' class reads the CLIP tokens from an attribute, shaped (B, n_images, seq, width).
    proj.clip_embeds = clip.float()[:, None]
    proj.shortcut = bool(v2)
    proj.shortcut_scale = float(scale)
    try:
        return proj(emb.float())
    finally:
        proj.clip_embeds = None
