"""The identity patch inside a real ComfyUI (tier ``comfyui``: needs COMFYUI_PATH and a Python that can
import ComfyUI, i.e. run from the venv tests/integration/setup_comfyui_env.sh makes).

ComfyUI is imported in a subprocess (tests/comfyui_identity_probe.py) so its modules never leak into
the rest of the test session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui
PROBE = Path(__file__).resolve().parent / "comfyui_identity_probe.py"


def probe(mode: str, timeout: int = 1200):
    out = subprocess.run([sys.executable, str(PROBE), mode], capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, I2P_QUIET="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_exact_stop_at_with_every_comfyui_sampler_and_scheduler():
    """Every fixed-step KSampler sampler x karras/normal/exponential/sgm_uniform/simple/beta x denoise
    0.6/0.9/1.0 (12 steps, start 0.2, stop 0.8): on in exactly round(.8N) - round(.2N) steps, and
    every model evaluation of a step agrees with that step's state."""
    runs = probe("samplers")
    assert len(runs) > 300
    bad = [r for r in runs if r["wrong"] or r["applied_steps"] != r["expected"] or r["n"] != r["steps"]]
    assert bad == []
    assert {r["sampler"] for r in runs} >= {"euler", "heun", "heunpp2", "dpm_2", "dpm_2_ancestral", "dpmpp_sde",
                                            "dpmpp_2m", "uni_pc", "lcm"}


def test_patched_sdxl_unet_in_comfy_sample():
    """comfy.sample.sample (heun, karras, denoise 0.9, 4 steps) on a real ComfyUI SDXL-layout UNet: all
    70 attn2 layers get the term, only in steps round(.25*4)..round(.75*4)-1, applying twice replaces,
    and the input ModelPatcher is untouched."""
    r = probe("unet")
    assert r["steps_run"] == 4
    assert r["active_steps"] == r["expected"] == [1, 2]
    assert set(r["layers_per_step"].values()) == {70}
    assert r["calls"] == 2 * 2 * 70  # 2 active steps x 2 heun evaluations x 70 layers: not stacked
    assert r["input_untouched"] and "replaced, not stacked" in r["message"]
    assert r["comfy_attention"]  # the replaced text attention runs through ComfyUI's optimized_attention
    assert r["weight0_rel_err"] < 1e-5  # weight 0 = ComfyUI's own cross-attention, bit for bit or close
    assert r["weight1_rel_diff"] > 1e-3  # and the identity term really changes the UNet output


def test_faceid_lora_layout_maps_onto_comfyui_sdxl_keys():
    """The LoRA test file's key layout (lora_unet_<diffusers path>_attn{1,2}_to_{q,k,v,out_0}) is one
    ComfyUI's LoRA loader resolves for SDXL: all 560 modules map onto UNet weights."""
    r = probe("lora", timeout=600)
    assert r["modules"] == 560 and r["n_missing"] == 0, r["missing"]
    # the loader applies it with ComfyUI's LoRA loader: one patch per UNet weight, input untouched,
    # and a second loader in the chain does not stack it
    assert "applied at strength 0.6" in r["message"] and r["patched_weights"] == 560 and r["input_patches"] == 0
    assert r["again_is_same"] and "not applied twice" in r["message2"]


def test_comfyui_clip_vision_loader_matches_the_transformers_path():
    """The ``full`` CLIP-ViT-H-14 test file (HF key layout) loads through ComfyUI's own CLIP vision code
    as ViT-H (hidden 1280, projection 1024), and its penultimate hidden states, image embeds and
    "zero-pixels" uncond features equal those of the transformers model the CI tests use.
    Builds a 1.26 GB file once into the full test-model cache; ~5 GB RAM while it runs."""
    from comfyui_fixtures import full_models_cache

    os.environ.setdefault("I2P_PROBE_MODELS", str(full_models_cache()))
    r = probe("clip")
    assert r["hidden"] == [1280, 1024] and r["shape"] == [1, 257, 1280]
    assert r["hidden_rel_err"] < 1e-3 and r["embeds_rel_err"] < 1e-3 and r["uncond_rel_err"] < 1e-3
