"""Run the identity patch inside a real ComfyUI (imported in-process from $COMFYUI_PATH) and print
JSON results; tests/test_identity_comfyui.py runs it in a subprocess so ComfyUI's modules never leak
into the other tests' process.

``samplers``: ComfyUI's own KSampler sigma logic (schedulers, denoise) and its own sampler objects
(KSAMPLER + k-diffusion functions) through its WrapperExecutor, with a cheap stand-in denoiser that
calls one identity layer patch the way ComfyUI's attention does. Truth for "which step is this
evaluation" comes from the sampler's own callbacks: k-diffusion calls ``callback(i)`` right after
step i's first evaluation, so the evaluation just before ``callback(i)`` opens step i and any
evaluation after it, up to the one that opens step i+1, belongs to step i.

``unet``: ``comfy.sample.sample`` on a real ComfyUI SDXL UNet (SDXL's block layout: the same 70
attn2 layers; 32 base channels instead of 320 so it runs on a CPU), with the MODEL patched by
``patch_model`` on a real ModelPatcher: every layer is hit, only in the active steps.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ["COMFYUI_PATH"])
sys.path.insert(0, str(Path(__file__).resolve().parent))

import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True

import torch  # noqa: E402

import comfy.model_sampling  # noqa: E402
import comfy.patcher_extension  # noqa: E402
import comfy.samplers  # noqa: E402
from packload import pack_module  # noqa: E402

attn = pack_module("core.identity.attention")
stop_at = pack_module("core.identity.stop_at")

SKIP = {"dpm_fast", "dpm_adaptive"}  # adaptive step counts: no fixed N
# *_cfg_pp samplers make the same model calls as their base sampler but read the uncond prediction
# through a post-CFG hook only the real CFGGuider runs: the stand-in denoiser cannot drive them.


class MS(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
    pass


class FakeModel:
    def __init__(self):
        self.ms = MS(None)

    def get_model_object(self, name):
        assert name == "model_sampling"
        return self.ms


def make_patch(start, stop):
    d = 8
    p = attn.IdentityPatch(torch.randn(1, 4, d), torch.randn(1, 4, d), [torch.randn(d, d)], [torch.randn(d, d)],
                           1.0, start, stop)
    p.trace = []
    return p


def run_sampler(name, scheduler, steps, denoise, start, stop):
    model = FakeModel()
    ks = comfy.samplers.KSampler(model, steps, "cpu", name, scheduler, denoise)
    sigmas = ks.sigmas
    patch = make_patch(start, stop)
    layer = patch.layer_fn(0)
    events = []  # ("eval", applied) / ("cb", i)

    class Wrap:
        cfg = 1.0
        inner_model = type("I", (), {"model_sampling": model.ms})()
        model_patcher = type("P", (), {"model": object(), "get_model_object": lambda self, n: model.ms})()

        def __call__(self, x, sigma, model_options=None, seed=None, **kw):
            opts = {"sigmas": sigma, "sample_sigmas": sigmas, "cond_or_uncond": [0], "n_heads": 2}
            q = torch.randn(x.shape[0], 4, 8)
            before = len(patch.trace)
            layer(q, q, q, opts)
            events.append(("eval", len(patch.trace) > before))
            return x * 0.9

    def callback(i, denoised, x, total):
        events.append(("cb", i))

    sampler = comfy.samplers.sampler_object(name)
    wrapper = stop_at.SamplerStepWrapper(patch.gate)
    executor = comfy.patcher_extension.WrapperExecutor.new_class_executor(sampler.sample, sampler, [wrapper])
    noise = torch.randn(1, 4, 8, 8)
    executor.execute(Wrap(), sigmas, {"model_options": {}, "seed": 1}, callback, noise, torch.zeros_like(noise),
                     None, True)
    # truth from the callbacks
    truth, pending, current = [], [], -1
    for ev in events:
        if ev[0] == "eval":
            pending.append(ev[1])
        else:
            i = ev[1]
            *extra, first = pending
            truth += [(current, a) for a in extra] + [(i, first)]
            pending, current = [], i
    truth += [(current, a) for a in pending]
    n = len(sigmas) - 1
    active = set(stop_at.active_steps(start, stop, n))
    wrong = [(s, a) for s, a in truth if a != (s in active)]
    applied = sorted({s for s, a in truth if a})
    return {"sampler": name, "scheduler": scheduler, "steps": steps, "denoise": denoise, "n": n,
            "evals": len(truth), "applied_steps": len(applied), "expected": len(active), "wrong": wrong[:5]}


def samplers_mode():
    out = []
    names = [s for s in comfy.samplers.KSAMPLER_NAMES if s not in SKIP and "cfg_pp" not in s]
    for name in names:
        for scheduler in ("karras", "normal", "exponential", "sgm_uniform", "simple", "beta"):
            for denoise in (0.6, 0.9, 1.0):
                out.append(run_sampler(name, scheduler, 12, denoise, 0.2, 0.8))
    for name in ("uni_pc", "uni_pc_bh2", "ddim"):
        out.append(run_sampler(name, "normal", 12, 0.9, 0.0, 0.75))
    return out


def tiny_sdxl():
    """A real ComfyUI SDXL BaseModel with SDXL's block layout and 32 base channels."""
    import comfy.supported_models

    torch.manual_seed(0)
    cfg = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
           "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "dtype": torch.float32,
           "in_channels": 4, "model_channels": 32, "num_res_blocks": [2, 2, 2],
           "transformer_depth": [0, 0, 2, 2, 10, 10], "channel_mult": [1, 2, 4], "transformer_depth_middle": 10,
           "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 16,
           "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "use_temporal_attention": False,
           "use_temporal_resblock": False}
    model = comfy.supported_models.SDXL(cfg).get_model({}, device=torch.device("cpu"))
    with torch.no_grad():  # ComfyUI leaves weights uninitialised (they are normally loaded)
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def lora_mode():
    """Every module of the FaceID LoRA test file maps onto a UNet weight in ComfyUI's SDXL key map."""
    import comfy.lora
    from model_factory.ipadapter_models import sdxl_lora_modules

    key_map = comfy.lora.model_lora_keys_unet(tiny_sdxl(), {})
    names = [f"lora_unet_{path}_{a}_{p}" for path, _ in sdxl_lora_modules() for a in ("attn1", "attn2")
             for p in ("to_q", "to_k", "to_v", "to_out_0")]
    missing = [n for n in names if n not in key_map]
    # and the loader's own path: comfy.sd.load_lora_for_models on a real ModelPatcher
    import tempfile

    import comfy.model_patcher
    import folder_paths
    import model_factory

    ipa = pack_module("models.ipadapter")
    root = Path(tempfile.mkdtemp(prefix="i2p-lora-"))
    lora = model_factory.build("faceid-plusv2-sdxl-lora", root, "tiny")
    folder_paths.add_model_folder_path("loras", str(lora.parent))
    mp = comfy.model_patcher.ModelPatcher(tiny_sdxl(), load_device=torch.device("cpu"),
                                          offload_device=torch.device("cpu"))
    stub = type("A", (), {"name": "ip-adapter-faceid-plusv2_sdxl.bin"})()
    patched, message = ipa.apply_lora(mp, stub, 0.6)
    again, message2 = ipa.apply_lora(patched, stub, 0.6)
    return {"modules": len(names), "missing": missing[:5], "n_missing": len(missing), "message": message,
            "patched_weights": len(patched.patches), "input_patches": len(mp.patches), "message2": message2,
            "again_is_same": again is patched}


def unet_mode():
    import comfy.model_patcher
    import comfy.sample

    base = tiny_sdxl()
    mp = comfy.model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    widths = [64] * 4 + [128] * 20 + [128] * 30 + [64] * 6 + [128] * 10
    d = 16
    patch = attn.IdentityPatch(torch.randn(1, 4, d), torch.randn(1, 4, d), [torch.randn(c, d) for c in widths],
                               [torch.randn(c, d) for c in widths], 1.0, 0.25, 0.75,
                               attention=pack_module("core.identity.apply").text_attention(),
                               info={"mode": "faceid_plus_v2", "weight": 1.0, "start_at": 0.25, "stop_at": 0.75})
    patch.trace = []
    patched, _ = attn.patch_model(mp, patch)
    twice, message = attn.patch_model(patched, patch)
    pos = [[torch.randn(1, 77, 2048), {"pooled_output": torch.randn(1, 1280)}]]
    neg = [[torch.randn(1, 77, 2048), {"pooled_output": torch.randn(1, 1280)}]]
    latent = torch.zeros(1, 4, 16, 16)
    steps_seen = []
    comfy.sample.sample(twice, torch.randn(1, 4, 16, 16), 4, 5.0, "heun", "karras", pos, neg, latent, denoise=0.9,
                        callback=lambda i, *a: steps_seen.append(i), disable_pbar=True, seed=1)
    # weight 0: the replace patches reproduce ComfyUI's own cross-attention exactly
    zero = attn.IdentityPatch(torch.randn(1, 4, d), torch.randn(1, 4, d), [torch.randn(c, d) for c in widths],
                              [torch.randn(c, d) for c in widths], 0.0, 0.0, 1.0,
                              attention=pack_module("core.identity.apply").text_attention())
    zp, _ = attn.patch_model(mp, zero)
    x, ts = torch.randn(2, 4, 16, 16), torch.tensor([500.0, 500.0])
    ctx, y = torch.randn(2, 77, 2048), torch.randn(2, 2816)
    with torch.no_grad():
        ref = base.diffusion_model(x, ts, context=ctx, y=y, transformer_options={})
        to = dict(zp.model_options["transformer_options"], cond_or_uncond=[1, 0])
        same = base.diffusion_model(x, ts, context=ctx, y=y, transformer_options=to)
        zero.weight = 1.0
        moved = base.diffusion_model(x, ts, context=ctx, y=y, transformer_options=to)
    weight0_rel_err = float((same - ref).abs().max() / ref.abs().max())
    weight1_rel_diff = float((moved - ref).abs().max() / ref.abs().max())
    per_step = {}
    for s, layer in patch.trace:
        per_step.setdefault(s, set()).add(layer)
    untouched = "patches_replace" not in mp.model_options.get("transformer_options", {})
    return {"steps_run": len(steps_seen), "active_steps": sorted(per_step),
            "comfy_attention": patch.attention is not attn.sdpa,
            "weight0_rel_err": weight0_rel_err, "weight1_rel_diff": weight1_rel_diff,
            "layers_per_step": {str(k): len(v) for k, v in per_step.items()},
            "calls": len(patch.trace), "input_untouched": untouched, "message": message,
            "expected": list(stop_at.active_steps(0.25, 0.75, 4))}


def clip_mode():
    """The ``full`` CLIP-ViT-H-14 test file through ComfyUI's own CLIPVisionLoader code versus the
    transformers model the tests use: same penultimate hidden states on an aligned face crop, and the
    uncond ("zero-pixels") features."""
    import tempfile

    import numpy as np

    import comfy.clip_vision
    import model_factory

    enc = pack_module("core.identity.encoding")
    root = Path(os.environ.get("I2P_PROBE_MODELS") or tempfile.mkdtemp(prefix="i2p-clip-"))
    path = model_factory.build("clip-vit-h-14", root, "full")
    cv = comfy.clip_vision.load(str(path))
    comfy_enc = enc.clip_encoder(cv)
    hf = enc.load_hf_clip_vision(path)
    rng = np.random.default_rng(0)
    crop = torch.from_numpy(rng.integers(0, 256, (1, 224, 224, 3)).astype(np.float32) / 255.0)
    a_h, a_e = comfy_enc.encode(crop)
    b_h, b_e = hf.encode(crop)
    ua, _ = comfy_enc.encode_uncond()
    ub, _ = hf.encode_uncond()
    rel = lambda x, y: float((x - y).abs().max() / y.abs().max())  # noqa: E731
    return {"hidden": [comfy_enc.hidden_size, comfy_enc.projection_dim], "shape": list(a_h.shape),
            "hidden_rel_err": rel(a_h, b_h), "embeds_rel_err": rel(a_e, b_e), "uncond_rel_err": rel(ua, ub),
            "dtype": str(cv.dtype)}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = {"samplers": samplers_mode, "unet": unet_mode, "lora": lora_mode, "clip": clip_mode}[mode]()
    print("RESULT " + json.dumps(result))
