"""IP-Adapter FaceID Plus v2 / FaceID / plain ViT-H (SDXL), the FaceID LoRAs and CLIP-ViT-H-14, with
random weights in the real file formats and key layouts.

- FaceID Plus v2 and FaceID: ``torch.save({"image_proj": {...}, "ip_adapter": {...}})`` (.bin), with
  the original (not diffusers) key names, ``"{2i+1}.to_k_ip.weight"`` for the 70 SDXL attn2 layers
  and a few ``*_lora.*`` keys as the real files carry (the loader must ignore them).
- plain ViT-H: safetensors with flat ``image_proj.*`` / ``ip_adapter.*`` keys.
- LoRA: safetensors, ``lora_unet_<diffusers module path with _>.lora_down.weight`` / ``.lora_up.weight``
  on to_q/to_k/to_v/to_out_0 of attn1 and attn2 of every SDXL transformer block (140 blocks).
- CLIP: transformers ``CLIPVisionModelWithProjection`` state dict (HF keys), safetensors.

``tiny``: the adapter's token width D=128 (2 heads of 64, as the loader infers heads = width/64),
CLIP hidden 64 (3 layers, projection 32), LoRA rank 4. The to_k_ip/to_v_ip *output* widths and the
LoRA's in/out widths stay SDXL's real 640/1280/2048 in both profiles: they must fit the UNet.
``full``: real sizes (D=2048, CLIP ViT-H/14 1280 x 32 layers, projection 1024, LoRA rank 128).
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import builder

SDXL_WIDTHS = [640] * 4 + [1280] * 20 + [1280] * 30 + [640] * 6 + [1280] * 10
DIMS = {
    "tiny": dict(token=128, clip_hidden=64, clip_layers=3, clip_inter=128, clip_heads=2, clip_proj=32, lora_rank=4),
    "full": dict(token=2048, clip_hidden=1280, clip_layers=32, clip_inter=5120, clip_heads=16, clip_proj=1024,
                 lora_rank=128),
}


def _rand(gen, shape, std=0.02):
    return torch.randn(*shape, generator=gen) * std


def _ln(gen, sd, prefix, dim):
    sd[f"{prefix}.weight"] = 1.0 + _rand(gen, (dim,), 0.05)
    sd[f"{prefix}.bias"] = _rand(gen, (dim,), 0.05)


def ip_layers(gen, token_dim: int, widths=SDXL_WIDTHS, lora_keys: bool = False) -> dict:
    sd = {}
    for i, c in enumerate(widths):
        sd[f"{2 * i + 1}.to_k_ip.weight"] = _rand(gen, (c, token_dim), token_dim ** -0.5)
        sd[f"{2 * i + 1}.to_v_ip.weight"] = _rand(gen, (c, token_dim), token_dim ** -0.5)
    if lora_keys:  # the real FaceID .bin files carry their LoRA in the processors too
        for n in (0, 1):
            c = widths[0]
            sd[f"{n}.to_q_lora.down.weight"] = _rand(gen, (4, c))
            sd[f"{n}.to_q_lora.up.weight"] = _rand(gen, (c, 4))
    return sd


def faceid_plus_image_proj(gen, d: int, clip_hidden: int, id_dim: int = 512, tokens: int = 4, depth: int = 4) -> dict:
    sd = {"proj.0.weight": _rand(gen, (id_dim * 2, id_dim)), "proj.0.bias": _rand(gen, (id_dim * 2,)),
          "proj.2.weight": _rand(gen, (d * tokens, id_dim * 2)), "proj.2.bias": _rand(gen, (d * tokens,))}
    _ln(gen, sd, "norm", d)
    p = "perceiver_resampler"
    sd[f"{p}.proj_in.weight"] = _rand(gen, (d, clip_hidden))
    sd[f"{p}.proj_in.bias"] = _rand(gen, (d,))
    sd[f"{p}.proj_out.weight"] = _rand(gen, (d, d))
    sd[f"{p}.proj_out.bias"] = _rand(gen, (d,))
    _ln(gen, sd, f"{p}.norm_out", d)
    for i in range(depth):
        _ln(gen, sd, f"{p}.layers.{i}.0.norm1", d)
        _ln(gen, sd, f"{p}.layers.{i}.0.norm2", d)
        sd[f"{p}.layers.{i}.0.to_q.weight"] = _rand(gen, (d, d))
        sd[f"{p}.layers.{i}.0.to_kv.weight"] = _rand(gen, (2 * d, d))
        sd[f"{p}.layers.{i}.0.to_out.weight"] = _rand(gen, (d, d))
        _ln(gen, sd, f"{p}.layers.{i}.1.0", d)
        sd[f"{p}.layers.{i}.1.1.weight"] = _rand(gen, (4 * d, d))
        sd[f"{p}.layers.{i}.1.3.weight"] = _rand(gen, (d, 4 * d))
    return sd


def faceid_image_proj(gen, d: int, id_dim: int = 512, tokens: int = 4) -> dict:
    sd = {"proj.0.weight": _rand(gen, (id_dim * 2, id_dim)), "proj.0.bias": _rand(gen, (id_dim * 2,)),
          "proj.2.weight": _rand(gen, (d * tokens, id_dim * 2)), "proj.2.bias": _rand(gen, (d * tokens,))}
    _ln(gen, sd, "norm", d)
    return sd


def plain_image_proj(gen, d: int, clip_proj: int, tokens: int = 4) -> dict:
    sd = {"proj.weight": _rand(gen, (d * tokens, clip_proj)), "proj.bias": _rand(gen, (d * tokens,))}
    _ln(gen, sd, "norm", d)
    return sd


def _half(sd: dict) -> dict:
    """fp16 in place, tensor by tensor, so a full-size build never holds two copies."""
    for k in list(sd):
        sd[k] = sd[k].to(torch.float16).contiguous()
    return sd


@builder("faceid-plusv2-sdxl")
def build_faceid_plusv2(dest: Path, profile: str) -> None:
    dims = DIMS[profile]
    gen = torch.Generator().manual_seed(401)
    sd = {"image_proj": _half(faceid_plus_image_proj(gen, dims["token"], dims["clip_hidden"])),
          "ip_adapter": _half(ip_layers(gen, dims["token"], lora_keys=True))}
    with open(dest, "wb") as f:
        torch.save(sd, f)


@builder("faceid-sdxl")
def build_faceid(dest: Path, profile: str) -> None:
    dims = DIMS[profile]
    gen = torch.Generator().manual_seed(402)
    sd = {"image_proj": _half(faceid_image_proj(gen, dims["token"])),
          "ip_adapter": _half(ip_layers(gen, dims["token"], lora_keys=True))}
    with open(dest, "wb") as f:
        torch.save(sd, f)


@builder("ip-adapter-sdxl-vit-h")
def build_plain(dest: Path, profile: str) -> None:
    from safetensors.torch import save_file

    dims = DIMS[profile]
    gen = torch.Generator().manual_seed(403)
    flat = {f"image_proj.{k}": v for k, v in plain_image_proj(gen, dims["token"], dims["clip_proj"]).items()}
    flat.update({f"ip_adapter.{k}": v for k, v in ip_layers(gen, dims["token"]).items()})
    save_file(_half(flat), str(dest))


def sdxl_lora_modules() -> list[tuple[str, int, int]]:
    """(kohya module prefix, in width of to_q/attn1 k,v, block width) for every SDXL attention."""
    blocks = []
    for a in range(2):
        blocks += [(f"down_blocks_1_attentions_{a}_transformer_blocks_{t}", 640) for t in range(2)]
        blocks += [(f"down_blocks_2_attentions_{a}_transformer_blocks_{t}", 1280) for t in range(10)]
    for a in range(3):
        blocks += [(f"up_blocks_0_attentions_{a}_transformer_blocks_{t}", 1280) for t in range(10)]
        blocks += [(f"up_blocks_1_attentions_{a}_transformer_blocks_{t}", 640) for t in range(2)]
    blocks += [(f"mid_block_attentions_0_transformer_blocks_{t}", 1280) for t in range(10)]
    return blocks


def build_lora(dest: Path, profile: str, seed: int) -> None:
    from safetensors.torch import save_file

    rank = DIMS[profile]["lora_rank"]
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for path, c in sdxl_lora_modules():
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out_0"):
                fan_in = 2048 if attn == "attn2" and proj in ("to_k", "to_v") else c
                key = f"lora_unet_{path}_{attn}_{proj}"
                sd[f"{key}.lora_down.weight"] = _rand(gen, (rank, fan_in), 0.01)
                sd[f"{key}.lora_up.weight"] = _rand(gen, (c, rank), 0.01)
    save_file(_half(sd), str(dest))


@builder("faceid-plusv2-sdxl-lora")
def build_plusv2_lora(dest: Path, profile: str) -> None:
    build_lora(dest, profile, 404)


@builder("faceid-sdxl-lora")
def build_faceid_lora(dest: Path, profile: str) -> None:
    build_lora(dest, profile, 405)


def clip_vision_model(profile: str, seed: int = 406, hidden: int | None = None):
    """A random CLIPVisionModelWithProjection (HF) of the profile's size (``hidden`` overrides: a
    ViT-bigG-like width for wrong-CLIP tests)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    dims = DIMS[profile]
    h = hidden or dims["clip_hidden"]
    cfg = CLIPVisionConfig(hidden_size=h, intermediate_size=dims["clip_inter"] if hidden is None else 2 * h,
                           num_hidden_layers=dims["clip_layers"], num_attention_heads=dims["clip_heads"],
                           patch_size=14, image_size=224, projection_dim=dims["clip_proj"], hidden_act="gelu",
                           layer_norm_eps=1e-5)
    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(cfg).eval()


@builder("clip-vit-h-14")
def build_clip(dest: Path, profile: str) -> None:
    from safetensors.torch import save_file

    model = clip_vision_model(profile)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(dest))
