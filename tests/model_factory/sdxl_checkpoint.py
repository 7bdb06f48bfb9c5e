"""Test builds of the SDXL inpainting checkpoint (manifest id ``realvisxl-v4-inpainting``).

``full``: a random-weight SDXL inpainting checkpoint at SDXL's real sizes (UNet with 9 input channels,
VAE, CLIP-L, OpenCLIP bigG; ~3.5 G parameters, ~6.9 GB in fp16). ComfyUI recognises an SDXL checkpoint
only by its real shapes, so nothing smaller loads through ``CheckpointLoaderSimple``. To get the key
layout exactly right it is derived from ComfyUI itself: its model classes are built on the meta device
(no memory) and its own checkpoint-save conversion (``state_dict_for_saving``) names the keys; the
values are then streamed into a safetensors file tensor by tensor, seeded per key, so the build needs
well under 1 GB of RAM. This needs a ComfyUI checkout (``COMFYUI_PATH``) and an interpreter that can
import it, so it runs in a subprocess: importing ComfyUI into the test process would make the pack's
adapter believe it runs inside ComfyUI.

``tiny``: the same file name with SDXL checkpoint key names (``model.diffusion_model.*``,
``first_stage_model.*``, ``conditioner.embedders.*``), 9 UNet input channels and tiny shapes, so the
factory can build every manifest entry in CI. Nothing samples with it: it is for code that inspects a
checkpoint file (its keys, its input channels), not for ComfyUI's loaders.
"""
from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Iterable, Iterator

if __package__:
    from . import builder
else:  # run as a script by _build_full, in ComfyUI's interpreter

    def builder(*_ids):
        return lambda fn: fn


MODEL_ID = "realvisxl-v4-inpainting"
SEED = 4_0_2026
#: Interpreter that runs the full build (it must be able to import ComfyUI): default the current one.
COMFY_PYTHON_ENV = "I2P_COMFY_PYTHON"

# SDXL base UNet as ComfyUI describes it (values from SDXL's published architecture), with the
# 4 extra input channels of an inpainting model: mask (1) + masked image latent (4).
SDXL_INPAINT_UNET = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 9, "out_channels": 4,
    "model_channels": 320, "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_middle": 10,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "use_spatial_transformer": True, "legacy": False, "num_classes": "sequential",
    "adm_in_channels": 2816, "use_linear_in_transformer": True, "context_dim": 2048,
    "num_head_channels": 64, "use_temporal_attention": False, "use_temporal_resblock": False,
}
SDXL_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
            "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


@builder(MODEL_ID)
def build_sdxl_inpainting(dest: Path, profile: str) -> None:
    if profile == "tiny":
        write_safetensors(dest, _tiny_tensors(), {"i2p_test_model": f"{MODEL_ID} tiny, seed {SEED}"})
    else:
        _build_full(Path(dest))


# ------------------------------------------------------------------------------------- safetensors
_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8}


def write_safetensors(path: Path, tensors: Iterable[tuple[str, str, tuple[int, ...], "callable"]],
                      metadata: dict[str, str] | None = None) -> int:
    """Stream tensors into a safetensors file without holding them all in memory.

    ``tensors`` yields ``(name, dtype, shape, make_bytes)``; ``make_bytes()`` is called once, in name
    order, when that tensor's data is written, and returns its bytes or an iterable of byte chunks (a
    multi-GB tensor need not be in memory at once). Returns the file size.
    """
    items = sorted(tensors, key=lambda t: t[0])
    header: dict = {"__metadata__": dict(metadata or {})}
    offset = 0
    for name, dtype, shape, _ in items:
        size = math.prod(shape) * _DTYPES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, dtype, shape, make_bytes in items:
            data = make_bytes()
            written = 0
            for chunk in [data] if isinstance(data, (bytes, bytearray)) else data:
                f.write(chunk)
                written += len(chunk)
            expected = math.prod(shape) * _DTYPES[dtype]
            if written != expected:
                raise ValueError(f"{name}: {written} bytes, expected {expected}")
    return 8 + len(raw) + offset


def _key_seed(name: str) -> int:
    return (SEED * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def random_fp16(name: str, shape: tuple[int, ...]):
    """Seeded random values that keep activations finite through a deep network.

    Matrices and convolutions: N(0, 1/fan_in) (unit-variance outputs); 1-D norm scales 1, biases small;
    CLIP's logit scale its usual log(100).
    """

    def make() -> bytes:
        import torch

        if name.endswith("logit_scale"):
            t = torch.full(shape, math.log(100.0))
        elif len(shape) <= 1:
            if name.endswith(".bias") or name.endswith("_bias"):
                g = torch.Generator().manual_seed(_key_seed(name))
                t = torch.randn(shape, generator=g) * 0.01
            else:
                t = torch.ones(shape)
        else:
            fan_in = math.prod(shape[1:])
            g = torch.Generator().manual_seed(_key_seed(name))
            t = torch.randn(shape, generator=g) * (1.0 / math.sqrt(fan_in))
        return t.to(torch.float16).contiguous().numpy().tobytes()

    return make


# -------------------------------------------------------------------------------------------- tiny
def _tiny_tensors() -> Iterator[tuple[str, str, tuple[int, ...], "callable"]]:
    """A small, representative subset of a real SDXL inpainting checkpoint's keys and layout."""
    u, v = "model.diffusion_model.", "first_stage_model."
    cl, cg = "conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model."
    c, ctx, adm = 8, 16, 24  # model channels, context (CLIP-L + bigG widths), pooled + size embeds
    shapes: dict[str, tuple[int, ...]] = {
        # UNet: 9 input channels (latent 4 + mask 1 + masked-image latent 4), 4 out
        u + "input_blocks.0.0.weight": (c, 9, 3, 3), u + "input_blocks.0.0.bias": (c,),
        u + "time_embed.0.weight": (4 * c, c), u + "time_embed.0.bias": (4 * c,),
        u + "time_embed.2.weight": (4 * c, 4 * c), u + "time_embed.2.bias": (4 * c,),
        u + "label_emb.0.0.weight": (4 * c, adm), u + "label_emb.0.0.bias": (4 * c,),
        u + "input_blocks.1.0.in_layers.0.weight": (c,), u + "input_blocks.1.0.in_layers.0.bias": (c,),
        u + "input_blocks.1.0.in_layers.2.weight": (c, c, 3, 3), u + "input_blocks.1.0.in_layers.2.bias": (c,),
        u + "input_blocks.4.1.proj_in.weight": (c, c), u + "input_blocks.4.1.proj_in.bias": (c,),
        u + "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight": (c, c),
        u + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (c, ctx),
        u + "input_blocks.4.1.transformer_blocks.0.attn2.to_v.weight": (c, ctx),
        u + "middle_block.1.transformer_blocks.0.attn2.to_k.weight": (c, ctx),
        u + "out.0.weight": (c,), u + "out.0.bias": (c,),
        u + "out.2.weight": (4, c, 3, 3), u + "out.2.bias": (4,),
        # VAE
        v + "encoder.conv_in.weight": (c, 3, 3, 3), v + "encoder.conv_in.bias": (c,),
        v + "encoder.conv_out.weight": (8, c, 3, 3), v + "encoder.conv_out.bias": (8,),
        v + "quant_conv.weight": (8, 8, 1, 1), v + "quant_conv.bias": (8,),
        v + "post_quant_conv.weight": (4, 4, 1, 1), v + "post_quant_conv.bias": (4,),
        v + "decoder.conv_in.weight": (c, 4, 3, 3), v + "decoder.conv_in.bias": (c,),
        v + "decoder.conv_out.weight": (3, c, 3, 3), v + "decoder.conv_out.bias": (3,),
        # CLIP-L (transformers layout) and OpenCLIP bigG (open_clip layout)
        cl + "embeddings.token_embedding.weight": (64, 6),
        cl + "embeddings.position_embedding.weight": (77, 6),
        cl + "encoder.layers.0.self_attn.q_proj.weight": (6, 6),
        cl + "final_layer_norm.weight": (6,), cl + "final_layer_norm.bias": (6,),
        cg + "token_embedding.weight": (64, 10), cg + "positional_embedding": (77, 10),
        cg + "transformer.resblocks.0.attn.in_proj_weight": (30, 10),
        cg + "transformer.resblocks.0.attn.in_proj_bias": (30,),
        cg + "ln_final.weight": (10,), cg + "ln_final.bias": (10,),
        cg + "text_projection": (10, 10), cg + "logit_scale": (),
    }
    for name, shape in shapes.items():
        yield name, "F16", shape, random_fp16(name, shape)
    pos = "conditioner.embedders.0.transformer.text_model.embeddings.position_ids"
    yield pos, "I64", (1, 77), lambda: struct.pack("<77q", *range(77))


# -------------------------------------------------------------------------------------------- full
def _build_full(dest: Path) -> None:
    comfy_path = os.environ.get("COMFYUI_PATH")
    if not comfy_path or not (Path(comfy_path) / "comfy").is_dir():
        raise RuntimeError(
            f"the 'full' build of {MODEL_ID} uses ComfyUI's own model classes: set COMFYUI_PATH to a "
            "ComfyUI checkout (and I2P_COMFY_PYTHON to an interpreter that can import it, if the "
            "current one cannot)"
        )
    python = os.environ.get(COMFY_PYTHON_ENV, sys.executable)
    cmd = [python, str(Path(__file__).resolve()), "--comfyui", comfy_path, "--out", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"full SDXL build failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")


def _comfy_checkpoint_layout(comfy_path: str) -> dict:
    """Every tensor of an SDXL inpainting checkpoint as ComfyUI saves one: name -> meta tensor (or a
    real tensor where ComfyUI's conversion makes one, e.g. CLIP-L's position_ids)."""
    sys.path.insert(0, comfy_path)
    import torch
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # model_management must not look for a GPU at import
    import comfy.model_detection
    import comfy.sdxl_clip
    from comfy.ldm.models.autoencoder import AutoencoderKL

    unet_config = dict(SDXL_INPAINT_UNET, dtype=torch.float16)
    model_config = comfy.model_detection.model_config_from_unet_config(unet_config)
    if model_config is None or type(model_config).__name__ != "SDXL" or not model_config.inpaint_model():
        raise RuntimeError(f"ComfyUI does not take this config for SDXL inpaint: {model_config!r}")
    model_config.set_inference_dtype(torch.float16, None)
    with torch.device("meta"):
        model = model_config.get_model({}, device="meta")
        clip = comfy.sdxl_clip.SDXLClipModel(device="meta", dtype=torch.float16)
        vae = AutoencoderKL(ddconfig=dict(SDXL_VAE), embed_dim=4)
    unet_sd = model.diffusion_model.state_dict()
    return model.state_dict_for_saving(unet_sd, clip.state_dict(), vae.state_dict())


def _tensor_entry(name: str, t) -> tuple[str, str, tuple[int, ...], "callable"]:
    import torch

    shape = tuple(t.shape)
    if t.is_floating_point():
        if t.device.type != "meta":  # a real value from ComfyUI's conversion: keep it
            return name, "F16", shape, lambda: t.to(torch.float16).contiguous().numpy().tobytes()
        return name, "F16", shape, random_fp16(name, shape)
    if t.device.type == "meta":
        raise RuntimeError(f"{name}: an integer tensor without a value")
    return name, "I64", shape, lambda: t.to(torch.int64).contiguous().numpy().tobytes()


def _main(argv: list[str]) -> None:
    import argparse
    import time

    ap = argparse.ArgumentParser(description=f"build the full-size random {MODEL_ID} test checkpoint")
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    sd = _comfy_checkpoint_layout(args.comfyui)
    n_params = sum(math.prod(t.shape) for t in sd.values())
    meta = {"i2p_test_model": f"{MODEL_ID} full, random weights, seed {SEED}",
            "modelspec.architecture": "stable-diffusion-xl-v1-base/inpaint"}
    size = write_safetensors(Path(args.out), [_tensor_entry(k, v) for k, v in sd.items()], meta)
    print(json.dumps({"tensors": len(sd), "params": n_params, "bytes": size, "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    _main(sys.argv[1:])
