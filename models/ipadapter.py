"""IP-Adapter files (FaceID Plus v2 / v1, FaceID, plain ViT-H image adapter): reading, variant
detection from the state dict, and the checks that catch a wrong file before sampling starts.

Layouts in the wild: the original ``.bin`` is ``{"image_proj": {...}, "ip_adapter": {...}}``;
``.safetensors`` conversions use flat ``image_proj.*`` / ``ip_adapter.*`` keys. ``ip_adapter`` holds
``"{2i+1}.to_k_ip.weight"`` / ``to_v_ip`` for the i-th cross-attention layer in diffusers'
attention-processor order (FaceID files also carry their LoRA there as ``*_lora.*``; it is not
used: the separate LoRA file is applied to the MODEL instead, as IPAdapter_plus does).

The adapter also owns what is computed from its weights alone: the projection (identity -> image
tokens, :meth:`IPAdapter.tokens`) and the checks that an identity, a MODEL or a CLIP fits it. Nothing
here imports the identity stage (``core/identity``), which imports this module: no import circle.

The family comes from the keys (``perceiver_resampler.*`` = FaceID Plus, ``norm.weight`` + ``proj.0``
= FaceID, ``proj.weight`` = plain). v1 and v2 Plus have identical layouts: only the file name tells
them apart (IPAdapter_plus keys off ``plusv2`` too); ``plus_version`` overrides it.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.model_errors import model_file_errors
from .manifest import id_for

NODE = "I2P Identity Adapter Loader"

FACEID_PLUS = "faceid_plus"
FACEID = "faceid"
PLAIN = "plain"
IP_PLUS = "ip_plus"  # ip-adapter-plus(-face): a resampler over CLIP tokens, not supported here

FAMILY_NAMES = {FACEID_PLUS: "FaceID Plus", FACEID: "FaceID", PLAIN: "IP-Adapter (image prompt)",
                IP_PLUS: "IP-Adapter Plus"}

# to_k_ip output widths in attention-processor order (down blocks, up blocks, mid block).
SDXL_WIDTHS = [640] * 4 + [1280] * 20 + [1280] * 30 + [640] * 6 + [1280] * 10
SD15_WIDTHS = [320] * 2 + [640] * 2 + [1280] * 2 + [1280] * 3 + [640] * 3 + [320] * 3 + [1280]
BASE_CONTEXT = {"SDXL": 2048, "SD1.5": 768}
CLIP_NAMES = {1280: "CLIP ViT-H/14 (hidden 1280, projection 1024)",
              1664: "CLIP ViT-bigG/14 (hidden 1664, projection 1280)",
              1024: "CLIP ViT-L/14 (hidden 1024, projection 768)"}


@dataclass
class IPAdapter:
    """A loaded adapter: the projection's state dict, the per-layer key/value weights, and what the
    file needs (base model, CLIP widths)."""

    name: str
    family: str
    is_v2: bool
    base: str  # "SDXL" / "SD1.5" / "unknown"
    image_proj: dict
    to_k_ip: list  # torch tensors (C_i, D), one per cross-attention layer in processor order
    to_v_ip: list
    token_dim: int  # D, the cross-attention context width the adapter was trained for
    clip_hidden: int | None = None  # CLIP hidden width the resampler reads (Plus)
    clip_projection: int | None = None  # CLIP image_embeds width (plain adapter)
    notes: list[str] = field(default_factory=list)
    _projection: object = None

    @property
    def uses_clip(self) -> bool:
        return self.family in (FACEID_PLUS, PLAIN)

    @property
    def uses_arcface(self) -> bool:
        return self.family in (FACEID_PLUS, FACEID)

    @property
    def title(self) -> str:
        t = FAMILY_NAMES[self.family]
        if self.family == FACEID_PLUS:
            t += " v2" if self.is_v2 else " v1"
        return f"{t} ({self.base})"

    def projection(self):
        """The diffusers projection module, built on first use (CPU, float32)."""
        if self._projection is None:
            self._projection = build_projection(self.image_proj)
            _projected[id(self)] = self
        return self._projection

    def tokens(self, identity, shortcut_weight: float = 1.0) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(cond_tokens, uncond_tokens) for an identity (see :func:`project`)."""
        return project(self, identity, shortcut_weight)

    def describe(self) -> str:
        lines = [f"{self.name}: {self.title}, {len(self.to_k_ip)} cross-attention layers, "
                 f"context width {self.token_dim}"]
        if self.clip_hidden:
            lines.append(f"needs {CLIP_NAMES.get(self.clip_hidden, f'a CLIP with hidden width {self.clip_hidden}')}")
        if self.clip_projection:
            lines.append(f"needs a CLIP vision model with image_embeds width {self.clip_projection}")
        return "\n".join(lines + self.notes)


_projected: "weakref.WeakValueDictionary[int, IPAdapter]" = weakref.WeakValueDictionary()


def _drop_projections() -> int:
    """The fp32 projections go when ComfyUI unloads every model (rebuilt from the state dict on use)."""
    adapters = list(_projected.values())
    for adapter in adapters:
        adapter._projection = None
    _projected.clear()
    return len(adapters)


comfy_adapter.on_unload_all(_drop_projections)


def read_state_dict(path: str | os.PathLike) -> dict:
    """{"image_proj": {...}, "ip_adapter": {...}} from either layout."""
    from ..core import comfy_adapter

    path = Path(path)
    with model_file_errors(NODE, "ipadapter_file", path, "an IP-Adapter weights file (torch zip or safetensors)",
                           id_for("ipadapter", path.name), "ipadapter"):
        sd = comfy_adapter.load_torch_file(path, safe_load=True)
    if "image_proj" in sd and "ip_adapter" in sd and isinstance(sd["image_proj"], dict):
        return {"image_proj": dict(sd["image_proj"]), "ip_adapter": dict(sd["ip_adapter"])}
    out: dict = {"image_proj": {}, "ip_adapter": {}}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        if head in out:
            out[head][rest] = value
    if not out["image_proj"] or not out["ip_adapter"]:
        raise I2PError(NODE, "ipadapter_file",
                       f"'{path.name}' is not an IP-Adapter file (no image_proj / ip_adapter weights).",
                       "pick an IP-Adapter file from models/ipadapter (e.g. ip-adapter-faceid-plusv2_sdxl.bin).")
    return out


def detect_family(image_proj: dict) -> str:
    if "perceiver_resampler.proj_in.weight" in image_proj:
        return FACEID_PLUS
    if "norm.weight" in image_proj and "proj.0.weight" in image_proj and "proj.2.weight" in image_proj:
        return FACEID
    if "proj.weight" in image_proj:
        return PLAIN
    if "latents" in image_proj:
        return IP_PLUS
    return "unknown"


def _layer_weights(ip_adapter: dict, which: str) -> list:
    idx = sorted(int(k.split(".")[0]) for k in ip_adapter if k.endswith(f".{which}.weight"))
    return [ip_adapter[f"{i}.{which}.weight"] for i in idx]


def detect_base(widths: list[int], token_dim: int) -> str:
    if widths == SDXL_WIDTHS:
        return "SDXL"
    if widths == SD15_WIDTHS or len(widths) == 16 or token_dim == 768:
        return "SD1.5"
    return "unknown"


def load_ipadapter(path: str | os.PathLike, plus_version: str = "auto") -> IPAdapter:
    """Read and classify an adapter file; raises I2PError for anything this pack cannot run."""
    path = Path(path)
    sd = read_state_dict(path)
    family = detect_family(sd["image_proj"])
    if family in ("unknown", IP_PLUS):
        what = "an IP-Adapter Plus (CLIP-token resampler)" if family == IP_PLUS else "an unknown adapter type"
        raise I2PError(NODE, "ipadapter_file", f"'{path.name}' is {what}; identity needs FaceID Plus v2, "
                       "FaceID or the plain ViT-H image adapter.",
                       "pick ip-adapter-faceid-plusv2_sdxl.bin (or ip-adapter-faceid_sdxl.bin / ip-adapter_sdxl_vit-h.safetensors).")
    k = _layer_weights(sd["ip_adapter"], "to_k_ip")
    v = _layer_weights(sd["ip_adapter"], "to_v_ip")
    if not k or len(k) != len(v):
        raise I2PError(NODE, "ipadapter_file", f"'{path.name}' has no complete to_k_ip/to_v_ip weights.",
                       "download the file again.")
    widths = [int(w.shape[0]) for w in k]
    token_dim = int(k[0].shape[1])
    base = detect_base(widths, token_dim)
    notes: list[str] = []
    lname = path.name.lower()
    is_v2 = False
    if family == FACEID_PLUS:
        if plus_version == "v2":
            is_v2 = True
        elif plus_version == "v1":
            is_v2 = False
        else:
            is_v2 = "plusv2" in lname or "plus_v2" in lname or "plus-v2" in lname
            if not is_v2 and "plus" not in lname:
                is_v2 = True  # the only FaceID Plus for SDXL is v2
                notes.append("FaceID Plus v1 and v2 have the same layout; the file name does not say, "
                             "so v2 is assumed (set plus_version to override).")
    ip = sd["image_proj"]
    clip_hidden = int(ip["perceiver_resampler.proj_in.weight"].shape[1]) if family == FACEID_PLUS else None
    clip_proj = int(ip["proj.weight"].shape[1]) if family == PLAIN else None
    return IPAdapter(name=path.name, family=family, is_v2=is_v2, base=base, image_proj=ip,
                     to_k_ip=k, to_v_ip=v, token_dim=token_dim, clip_hidden=clip_hidden,
                     clip_projection=clip_proj, notes=notes)


# --------------------------------------------------------------------------------------- projection
# Identity → the adapter's image tokens, with diffusers' own projection classes. diffusers converts the
# original key layout into ``ImageProjection`` (plain), ``IPAdapterFaceIDImageProjection`` (FaceID) and
# ``IPAdapterFaceIDPlusImageProjection`` (FaceID Plus), inferring the widths from the tensor shapes; we
# use that converter rather than a second copy of it. Token formulas (tencent-ailab IP-Adapter):
# FaceID Plus ``x = LN(MLP(id))`` (4 tokens), ``r = resampler(x, clip_penultimate)``, v2 ``x + s * r``
# (s = the shortcut weight), v1 ``r``; FaceID ``LN(MLP(id))``; plain ``LN(Linear(clip_image_embeds))``.
# Unconditional tokens run the same network on the reference's uncond inputs (zero ArcFace embedding,
# CLIP of an all-zero normalised pixel tensor, zero image_embeds); see core/identity/encoding.py.
def build_projection(image_proj: dict) -> "torch.nn.Module":
    """A diffusers projection module loaded (strictly) from an original ``image_proj`` state dict."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin

    sd = {k: v.float() for k, v in image_proj.items()}
    # The converter is an instance method that does not use its instance.
    module = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(None, sd, low_cpu_mem_usage=False)
    return module.float().eval()


def project(adapter: IPAdapter, identity, shortcut_weight: float = 1.0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(cond_tokens, uncond_tokens), each (n, T, D) float32, n = identities kept in ``identity`` (an
    ``Identity`` of core/identity/encoding.py, read through its ``require(name)``)."""
    import torch  # lazy: importing the pack stays cheap

    with torch.no_grad():
        return _project(adapter, identity, shortcut_weight)


def _project(adapter: IPAdapter, identity, shortcut_weight: float) -> tuple:
    import torch

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


def _plus(proj, emb: "torch.Tensor", clip: "torch.Tensor", v2: bool, scale: float) -> "torch.Tensor":
    # diffusers' class reads the CLIP tokens from an attribute, shaped (B, n_images, seq, width).
    proj.clip_embeds = clip.float()[:, None]
    proj.shortcut = bool(v2)
    proj.shortcut_scale = float(scale)
    try:
        return proj(emb.float())
    finally:
        proj.clip_embeds = None


# ------------------------------------------------------------------------------------------- checks
def check_for_model(adapter: IPAdapter, model_context_dim: int | None, node: str, n_layers: int = 70) -> None:
    """The adapter must be an SDXL one (70 layers) matching the MODEL's context width."""
    if adapter.base != "SDXL" or len(adapter.to_k_ip) != n_layers:
        raise I2PError(node, "adapter",
                       f"'{adapter.name}' is an {adapter.base} adapter ({len(adapter.to_k_ip)} cross-attention "
                       f"layers, context width {adapter.token_dim}) but the MODEL is SDXL "
                       f"({n_layers} layers, context width {model_context_dim or 2048}).",
                       "load the SDXL version of the adapter (e.g. ip-adapter-faceid-plusv2_sdxl.bin).")
    if model_context_dim is not None and model_context_dim != adapter.token_dim:
        raise I2PError(node, "adapter",
                       f"'{adapter.name}' expects a context width of {adapter.token_dim} but the MODEL's is "
                       f"{model_context_dim}.", "use an SDXL checkpoint with this SDXL adapter.")


def check_for_clip(adapter: IPAdapter, clip_hidden: int | None, clip_projection: int | None, clip_name: str,
                   node: str) -> None:
    """The CLIP_VISION model must have the widths the adapter was trained on (ViT-H for these files)."""
    if adapter.clip_hidden and clip_hidden is not None and clip_hidden != adapter.clip_hidden:
        raise I2PError(node, "clip_vision",
                       f"'{adapter.name}' needs {CLIP_NAMES.get(adapter.clip_hidden, f'hidden width {adapter.clip_hidden}')}"
                       f" but '{clip_name}' is {CLIP_NAMES.get(clip_hidden, f'a CLIP with hidden width {clip_hidden}')}.",
                       "load CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors with the core CLIPVisionLoader.")
    if adapter.clip_projection and clip_projection is not None and clip_projection != adapter.clip_projection:
        raise I2PError(node, "clip_vision",
                       f"'{adapter.name}' needs a CLIP with image_embeds width {adapter.clip_projection} but "
                       f"'{clip_name}' gives width {clip_projection}.",
                       "use the matching CLIP vision model (ViT-H for *_vit-h adapters, ViT-bigG for ip-adapter_sdxl).")


def check_identity(adapter: IPAdapter, identity, node: str) -> None:
    """An identity encoded with a CLIP must have the width this adapter reads (hidden or image_embeds)."""
    if adapter.uses_clip and identity.clip_hidden is not None:
        got = int(identity.clip_hidden.shape[-1]) if adapter.clip_hidden else int(identity.clip_embeds.shape[-1])
        want = adapter.clip_hidden or adapter.clip_projection
        if got != want:
            raise I2PError(node, "identity", f"this identity was encoded with a CLIP of width {got} but "
                           f"'{adapter.name}' needs width {want}.", "re-encode it with the adapter's CLIP (ViT-H).")


# -------------------------------------------------------------------------------------------- LoRA
LORA_MARK = "i2p_identity_lora"  # set on the MODEL once the adapter's LoRA is applied
def lora_name_for(adapter_name: str) -> str | None:
    """The LoRA file trained with a FaceID adapter: ``<stem>_lora.safetensors``."""
    stem = adapter_name.rsplit("/", 1)[-1]
    for ext in (".safetensors", ".bin"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    return f"{stem}_lora.safetensors" if "faceid" in stem.lower() else None


def apply_lora(model, adapter: IPAdapter, strength: float):
    """Apply the FaceID LoRA to the MODEL with ComfyUI's own LoRA loader. Returns (model, message)."""
    from ..core import comfy_adapter

    name = lora_name_for(adapter.name)
    if name is None:
        return model, "no LoRA: this adapter was not trained with one."
    if strength == 0:
        return model, f"LoRA {name} not applied (lora_strength is 0)."
    path = comfy_adapter.find_model("loras", name)
    if path is None:
        from ..core.model_errors import download_command
        from .manifest import by_filename

        entry = by_filename("loras", name)
        get = f"run: {download_command(entry.id)}" if entry else "put the file there"
        return model, (f"LoRA {name} is MISSING from models/loras: the adapter runs without the LoRA it was "
                       f"trained with, so likeness will be weaker. To use it, {get}.")
    options = getattr(model, "model_options", None) or {}
    already = options.get("transformer_options", {}).get(LORA_MARK)
    if already == name:
        return model, f"LoRA {name} is already on this MODEL (an earlier loader): not applied twice."
    comfy_sd = comfy_adapter.comfy_module("comfy.sd")
    if comfy_sd is None or not hasattr(model, "clone"):
        return model, f"LoRA {name} found but NOT applied: ComfyUI is not running (it applies LoRAs)."
    with model_file_errors(NODE, "ipadapter_file", path, f"the LoRA that belongs to {adapter.name}",
                           id_for("loras", name), "loras"):
        lora = comfy_adapter.load_torch_file(path, safe_load=True)
    patched, _ = comfy_sd.load_lora_for_models(model, None, lora, strength, 0)
    to = dict(patched.model_options.get("transformer_options", {}))
    to[LORA_MARK] = name
    patched.model_options["transformer_options"] = to
    return patched, f"LoRA {name} applied at strength {strength:g}."
