"""Random-weight instruction-edit models in the real key layouts of FLUX.2 [klein] 4B and Qwen-Image-Edit,
at reduced size, for the ``comfyui`` tier (tests/edit_model_comfyui_worker.py).

ComfyUI recognises a diffusion model by its keys (comfy/model_detection.py), so the files are written
from ComfyUI's own model classes (built with the config detection would derive, then randomised and
saved as ``diffusion_models/*.safetensors`` / ``vae/*.safetensors``), and the worker checks that
detection reads the file back as the same family and config. What is reduced, and why it still loads:

- FLUX.2 [klein] 4B (published: 5 double + 20 single blocks, hidden 3072 = 24 heads x 128, text input
  7680 = 3 x Qwen3-4B's 2560, no guidance embedding, 128-channel latent): 1 double + 1 single block,
  hidden 256 (2 heads of the real 128 dims); text input at the real 7680, so the real-size random
  Qwen3-4B text encoder's conditioning feeds it (the shipped workflow). Detection derives depth, width and heads
  from the shapes; the FLUX.2 markers (``double_stream_modulation_img``, no ``guidance_in``) are real.
- FLUX.2 VAE: ComfyUI's AutoencoderKL with the real encoder (ComfyUI builds it at 128 base channels
  whatever the file says), 32 z-channels, quant convs and the batch-norm latent (``bn.*``: 2x2 patches,
  128 channels at /16); the decoder at 32 base channels (ComfyUI reads the decoder width from the file).
- Qwen-Image-Edit-2511 (published: 60 transformer blocks, hidden 3072, text input 3584 from Qwen2.5-VL 7B):
  1 transformer block at the real widths, with the 2511 marker key (reference latents at timestep zero); ComfyUI takes every width from its defaults and only the
  block count and input channels from the file, so the widths cannot shrink. ~0.4 G parameters, stored
  in bf16 (~0.8 GB).
- Qwen-Image VAE (Wan 2.1 VAE, published base width 96): base width 32 (ComfyUI reads it from
  ``decoder.head.0.gamma``); 16-channel latent at /8, 5-D as ComfyUI's Wan VAE makes it.

Needs ComfyUI importable (it runs inside the worker's ComfyUI interpreter); this module imports it only
inside the functions, so the factory's discovery in CI does not need it.
"""
from __future__ import annotations

from pathlib import Path

SEED = 15_2026

FLUX2_KLEIN_REDUCED = {
    "image_model": "flux2", "axes_dim": [32, 32, 32, 32], "num_heads": 2, "mlp_ratio": 3.0, "theta": 2000,
    "out_channels": 128, "global_modulation": True, "mlp_silu_act": True, "qkv_bias": False, "ops_bias": False,
    "default_ref_method": "index", "ref_index_scale": 10.0, "txt_ids_dims": [3], "patch_size": 1,
    "in_channels": 128, "hidden_size": 256, "context_in_dim": 7680, "vec_in_dim": None, "depth": 1,
    "depth_single_blocks": 1, "guidance_embed": False, "yak_mlp": False, "txt_norm": False,
}
# 2511: ComfyUI marks Qwen-Image-Edit-2511 files with a ``__index_timestep_zero__`` key (Comfy-Org's repackaged
# file has it); detection then sets default_ref_method "index_timestep_zero" (reference latents at timestep 0).
QWEN_IMAGE_EDIT_REDUCED = {"image_model": "qwen_image", "in_channels": 64, "num_layers": 1,
                           "default_ref_method": "index_timestep_zero"}
QWEN_TEXT_DIM = 3584  # joint_attention_dim: fixed by ComfyUI's QwenImage defaults
FLUX2_VAE = {"double_z": True, "z_channels": 32, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
             "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
             "batch_norm_latent": True}
FLUX2_VAE_DECODER_CH = 32
WAN21_VAE_DIM = 32
TE_DTYPE = "float8_e4m3fn"  # torch dtype name; see the builders below

FILES = {
    "flux2": ("flux-2-klein-4b-reduced.safetensors", "flux2-vae-reduced.safetensors"),
    "qwen_image": ("qwen-image-edit-reduced.safetensors", "qwen-image-vae-reduced.safetensors"),
}


def _randomise(module, seed: int) -> None:
    """Seeded small normal weights, unit norms, zero biases: finite outputs through every block."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name or name.endswith(("gamma", ".scale")):
                p.fill_(1.0)
            else:
                p.copy_((torch.randn(p.shape, generator=gen) * 0.02).to(p.dtype))


def _save(module, dest: Path, dtype) -> None:
    import torch
    from safetensors.torch import save_file

    sd = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous()
          for k, v in module.state_dict().items()}
    if any(k.startswith("bn.") for k in sd):  # running stats must stay fp32-exact
        sd.update({k: v.float() for k, v in sd.items() if k.startswith("bn.")})
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    save_file(sd, str(part))
    part.replace(dest)
    del torch


def build_diffusion_model(kind: str, dest: Path) -> Path:
    """Write the reduced FLUX.2 klein or Qwen-Image-Edit diffusion model (ComfyUI's diffusion_models
    layout: bare transformer keys) to ``dest``."""
    import torch
    import comfy.supported_models as sm

    if kind == "flux2":
        config, cls, dtype = dict(FLUX2_KLEIN_REDUCED), sm.Flux2, torch.float32
    elif kind == "qwen_image":
        config, cls, dtype = dict(QWEN_IMAGE_EDIT_REDUCED), sm.QwenImage, torch.bfloat16
    else:
        raise ValueError(kind)
    model_config = cls(config)
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device="cpu")
    diffusion = model.diffusion_model
    _randomise(diffusion, SEED)
    _save(diffusion, dest, dtype)
    return dest


def build_vae(kind: str, dest: Path) -> Path:
    """Write the reduced FLUX.2 VAE or Qwen-Image (Wan 2.1) VAE to ``dest`` (ComfyUI's vae layout)."""
    import torch

    if kind == "flux2":
        from comfy.ldm.models.autoencoder import AutoencoderKL

        decoder = dict(FLUX2_VAE, ch=FLUX2_VAE_DECODER_CH)
        vae = AutoencoderKL(ddconfig=dict(FLUX2_VAE), embed_dim=FLUX2_VAE["z_channels"], decoder_ddconfig=decoder)
    elif kind == "qwen_image":
        from comfy.ldm.wan.vae import WanVAE

        vae = WanVAE(dim=WAN21_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True], dropout=0.0)
    else:
        raise ValueError(kind)
    _randomise(vae, SEED + 1)
    _save(vae, dest, torch.float32)
    return dest


def build(kind: str, models_dir: Path) -> tuple[Path, Path]:
    """Both files of one family under a ComfyUI ``models/`` tree (skipped when already there)."""
    unet_name, vae_name = FILES[kind]
    unet = Path(models_dir) / "diffusion_models" / unet_name
    vae = Path(models_dir) / "vae" / vae_name
    if not unet.exists():
        build_diffusion_model(kind, unet)
    if not vae.exists():
        build_vae(kind, vae)
    return unet, vae


# ------------------------------------------------------------------------ manifest-file builders
# ``tiny``: the real file names with a handful of real-layout keys (no ComfyUI needed: CI checks names
# and formats). ``full``: the reduced models above, written from ComfyUI's classes (the comfyui tier's
# model build runs where ComfyUI imports). The text encoders' ``full`` files are NOT reduced: ComfyUI
# builds Qwen3-4B (36 layers, hidden 2560, vocab 151936, taps layers 9/18/27) and Qwen2.5-VL 7B (28 layers,
# hidden 3584, vocab 152064, plus the 32-block vision tower TextEncodeQwenImageEditPlus runs on its images)
# from fixed configs, so every parameter is written, random, streaming (text_encoders.py), in
# float8_e4m3fn (ComfyUI holds it as fp8 and casts per layer on the CPU) although each file keeps the
# release's name, which is what the workflow's CLIPLoader names.
def _tiny(dest: Path, keys: dict) -> None:
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(SEED)
    save_file({k: torch.randn(shape, generator=gen) * 0.02 for k, shape in keys.items()}, str(dest))


if __package__:
    from . import builder
    from .text_encoders import comfy_importable_on_cpu as _comfy_importable, write_random_text_encoder

    @builder("flux2-klein-4b")
    def build_flux2_klein(dest: Path, profile: str) -> None:
        if profile == "tiny":
            _tiny(dest, {"img_in.weight": (16, 128), "txt_in.weight": (16, 8), "final_layer.linear.weight": (128, 16),
                         "double_stream_modulation_img.lin.weight": (96, 16),
                         "double_blocks.0.img_attn.norm.key_norm.scale": (8,)})
        else:
            _comfy_importable()
            build_diffusion_model("flux2", dest)

    @builder("flux2-vae")
    def build_flux2_vae(dest: Path, profile: str) -> None:
        if profile == "tiny":
            _tiny(dest, {"decoder.conv_in.weight": (16, 32, 3, 3), "encoder.conv_in.weight": (16, 3, 3, 3),
                         "bn.running_mean": (128,), "bn.running_var": (128,)})
        else:
            _comfy_importable()
            build_vae("flux2", dest)

    def _full_text_encoder(dest: Path, llama_class: str, seed: int) -> None:
        """Every parameter of ComfyUI's text-encoder class, random, in TE_DTYPE (see the comment above)."""
        _comfy_importable()
        import torch
        from comfy.text_encoders import llama

        write_random_text_encoder(getattr(llama, llama_class), dest, dtype=getattr(torch, TE_DTYPE), seed=seed)

    @builder("qwen3-4b-text-encoder")
    def build_qwen3_4b(dest: Path, profile: str) -> None:
        if profile != "tiny":
            _full_text_encoder(dest, "Qwen3_4B", SEED + 2)
            return
        _tiny(dest, {"model.embed_tokens.weight": (32, 16), "model.layers.0.self_attn.q_proj.weight": (16, 16),
                     "model.norm.weight": (16,)})

    @builder("qwen-image-edit-2511")
    def build_qwen_image_edit(dest: Path, profile: str) -> None:
        if profile == "tiny":
            _tiny(dest, {"img_in.weight": (16, 64), "txt_norm.weight": (16,), "txt_in.weight": (16, 16),
                         "proj_out.weight": (64, 16), "transformer_blocks.0.img_mod.1.weight": (96, 16),
                         "__index_timestep_zero__": (0,)})
        else:
            _comfy_importable()
            build_diffusion_model("qwen_image", dest)

    @builder("qwen-image-vae")
    def build_qwen_image_vae(dest: Path, profile: str) -> None:
        if profile == "tiny":
            _tiny(dest, {"decoder.head.0.gamma": (8, 1, 1, 1), "encoder.conv1.weight": (8, 3, 3, 3, 3),
                         "conv1.weight": (32, 32, 1, 1, 1)})
        else:
            _comfy_importable()
            build_vae("qwen_image", dest)

    @builder("qwen2.5-vl-7b-text-encoder")
    def build_qwen25_vl_7b(dest: Path, profile: str) -> None:
        if profile != "tiny":
            _full_text_encoder(dest, "Qwen25_7BVLI", SEED + 3)
            return
        _tiny(dest, {"model.embed_tokens.weight": (32, 16), "model.layers.0.self_attn.k_proj.bias": (8,),
                     "model.norm.weight": (16,), "visual.patch_embed.proj.weight": (16, 3, 2, 14, 14)})
