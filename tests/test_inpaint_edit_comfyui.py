"""Face Inpaint with instruction-edit models inside a real ComfyUI (opt-in tier: COMFYUI_PATH set, run with
ComfyUI's interpreter, under the machine's ComfyUI lock: the worker peaks at ~2.7 GB).

Reduced random-weight FLUX.2 [klein] and Qwen-Image-Edit models in their real key layouts
(tests/model_factory/edit_models.py says what is reduced) are written to disk, recognised by ComfyUI's
model detection, loaded through UNETLoader / VAELoader, conditioned through ComfyUI's ReferenceLatent
and sampled through comfy.sample by the node. Checked: the family ComfyUI built, the crop as the last
reference latent after the user's, 16-multiple sampling sizes, the SDXL-only parts skipped (the identity
patch never reaches the sampler, the graph's MODEL keeps it), 0 pixels changed outside the blend
zone, and I2P Apply Identity refusing the real DiT MODEL on its input `model`. Runs in a subprocess so ComfyUI's modules never leak into the other tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "edit_model_comfyui_worker.py"


@pytest.mark.comfyui
def test_face_inpaint_with_reduced_flux2_klein_and_qwen_image_edit_in_real_comfyui(tmp_path):
    out = subprocess.run([sys.executable, str(WORKER), os.environ["COMFYUI_PATH"], str(tmp_path / "models")],
                         capture_output=True, text=True, timeout=1200)
    if out.returncode == 77:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["in_comfyui"] is True
    expect = {
        "flux2": dict(model_class="Flux2", channels=128, downscale=16, latent=[1, 128, 8, 8], name="FLUX.2",
                      detected={"image_model": "flux2", "depth": 1, "depth_single_blocks": 1, "hidden_size": 256,
                                "num_heads": 2, "in_channels": 128, "guidance_embed": False}),
        "qwen_image": dict(model_class="QwenImage", channels=16, downscale=8, latent=[1, 16, 1, 16, 16],
                           name="Qwen-Image", detected={"image_model": "qwen_image", "in_channels": 64, "num_layers": 1,
                                                         "default_ref_method": "index_timestep_zero"}),  # 2511
    }
    for kind, e in expect.items():
        r = report[kind]
        assert r["model_class"] == e["model_class"] and r["latent_channels"] == e["channels"]
        assert {k: r["detected"][k] for k in e["detected"]} == e["detected"]  # ComfyUI's detection read the file
        assert r["same_keys"] and r["same_shapes"]  # no missing or unexpected weights
        assert r["vae_latent_channels"] == e["channels"] and r["vae_downscale"] == e["downscale"]
        assert r["shape"] == [1, 200, 320, 3] and r["finite"]
        assert r["background_exact"] is True and r["changed_outside"] == 0  # 0 px changed outside the blend zone
        assert r["face_changed"] > 0.5
        assert len(r["samples"]) == 2  # two faces
        for s in r["samples"]:
            assert s["latent_shape"] == e["latent"]  # 128 px crop: /16 (FLUX.2) or /8 x 5-D (Wan latent)
            assert s["refs"] == [r["user_ref_shape"], e["latent"]]  # user's reference first, the crop last
            assert not s["identity_on_model"] and s["attn2_patches"] == 0 and not s["concat"]
            if kind == "flux2":  # scheduler "flux2": exactly what ComfyUI's Flux2Scheduler gives a 128x128 crop
                assert s["sigmas"] == r["flux2_scheduler_node_sigmas"]
            else:
                assert s["sigmas"] is None  # a named scheduler through comfy.sample.sample
        assert r["graph_model_keeps_identity"]
        assert f"{e['name']} ({e['channels']}-channel latent, sizes in multiples of 16 px)" in r["text"]
        assert "reference latent 2 (the edit target)" in r["text"] and "identity MODEL patch skipped" in r["text"]
        assert "sampled at 128x128" in r["text"]
        refusal = r["identity_refusal"]  # I2P Apply Identity on ComfyUI's real FLUX.2 / Qwen-Image MODEL
        assert refusal and (refusal["node"], refusal["input"]) == ("I2P Apply Identity", "model"), refusal
        assert f"the MODEL is {e['name']}" in refusal["text"] and "I2P Face Inpaint" in refusal["text"]
