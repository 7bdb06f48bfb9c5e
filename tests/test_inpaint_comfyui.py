"""Face Inpaint inside a real ComfyUI (opt-in tier: COMFYUI_PATH set, run with ComfyUI's interpreter).

In-process check with small random SDXL-architecture models built from ComfyUI's own classes: the real
``comfy.sample`` path, inpainting-model detection (9 vs 4 input channels), progress hook events with
latent previews, the identity-patch line, bit-exact background, and cancel through ComfyUI's own
interrupt. Runs in a subprocess so ComfyUI's modules never leak into the other tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "inpaint_comfyui_worker.py"


@pytest.mark.comfyui
def test_face_inpaint_in_real_comfyui_with_small_sdxl_models():
    out = subprocess.run([sys.executable, str(WORKER), os.environ["COMFYUI_PATH"]], capture_output=True, text=True,
                         timeout=900)
    if out.returncode == 77:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["in_comfyui"] is True
    for name, kind in (("inpaint", "inpainting checkpoint"), ("plain", "ordinary checkpoint")):
        r = report[name]
        assert r["shape"] == [2, 200, 320, 3]  # 2 variations of one image
        assert r["preview_shape"] == [2, 384, 768, 3]  # one preview per face
        assert r["background_exact"] is True
        assert r["face_changed"] > 0.5 and r["variations_differ"] and r["finite"]
        assert kind in r["text"]
        assert "identity active in steps 1..1 of 2" in r["text"]
        assert r["events"] == 8 and r["previews"] == 8  # 2 faces x 2 variations x 2 steps, each with a preview
    assert report["cancel"] == "InterruptProcessingException"
    assert report["cancel_events"] == 1  # stopped at the first step


# ------------------------------------------------------------------ the full checkpoint, served
SDXL_ID = "realvisxl-v4-inpainting"


def _couple_png(w: int = 320, h: int = 256) -> tuple[bytes, "object"]:
    """A non-square picture (no pure-black border, see the fake detector's docstring) whose alpha is 0
    on two ellipses at the fake detector's faces A and B: LoadImage's MASK (1 - alpha) is the face mask."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    rgb = rng.integers(30, 230, (h, w, 3), dtype=np.uint8)
    alpha = np.full((h, w), 255, np.uint8)
    ys, xs = np.mgrid[0:h, 0:w]
    for box in ((0.348, 0.129, 0.523, 0.344), (0.040, 0.600, 0.180, 0.780)):  # faces A and B
        cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
        rx, ry = (box[2] - box[0]) / 2 * w, (box[3] - box[1]) / 2 * h
        alpha[((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1] = 0
    buf = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(buf, "PNG")
    return buf.getvalue(), rgb, alpha


def face_inpaint_prompt(ckpt: str, image: str, steps: int, target: int) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait photo", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": image}},
        "5": {"class_type": "I2PFaceAnalyzerLoader", "inputs": {"pack": "buffalo_l", "provider": "auto"}},
        "6": {"class_type": "I2PDetectFaces",
              "inputs": {"analyzer": ["5", 0], "image": ["4", 0], "order": "largest", "indices": "",
                         "gender": "any", "min_size": 0, "threshold": 0.5, "det_size": 640, "if_no_face": "error"}},
        "7": {"class_type": "I2PFaceInpaint",
              "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2],
                         "image": ["4", 0], "mask": ["4", 1], "faces": ["6", 0], "seed": 11, "steps": steps,
                         "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.8,
                         "target_size": target, "context": 2.0, "blend": 8, "batch_count": 1}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "i2p_face_inpaint"}},
    }


@pytest.mark.comfyui
@pytest.mark.timeout(1500)
def test_face_inpaint_node_with_full_sdxl_inpainting_checkpoint(comfyui_server):
    """Two faces of a non-square photo, full-size random SDXL inpainting weights, target 256, 2 steps:
    output shape, bit-exact background (after ComfyUI's own SaveImage conversion) and progress events."""
    import io

    import numpy as np
    from PIL import Image

    if SDXL_ID not in comfyui_server.built_models:
        pytest.fail(f"the full SDXL test checkpoint was not built: {comfyui_server.skipped_models.get(SDXL_ID)}")
    if "buffalo_l-det_10g" not in comfyui_server.built_models:
        pytest.fail(f"buffalo_l test models were not built: {comfyui_server.skipped_models}")
    png, rgb, alpha = _couple_png()
    name = comfyui_server.upload_image(png, "i2p_face_inpaint_input.png")
    steps = 2
    run = comfyui_server.run_prompt(face_inpaint_prompt(comfyui_server.built_models[SDXL_ID].name, name, steps, 256),
                                    timeout=1400)
    assert run.succeeded, f"{run.error}\n{comfyui_server.log_tail()}"
    progress = [p for p in run.of_type("progress") if p.get("node") == "7"]
    assert len(progress) >= 2 * steps and progress[-1]["value"] == progress[-1]["max"] == steps, progress
    assert run.previews, "no latent preview frames arrived"
    text = [e for e in run.of_type("executed") if e.get("node") == "7"]
    assert text and "inpainting checkpoint" in text[0]["output"]["text"][0], text
    assert "image 0 face 1: crop" in text[0]["output"]["text"][0]

    (out,) = comfyui_server.output_images(run.history)
    result = np.asarray(Image.open(io.BytesIO(comfyui_server.view(out["filename"], out["subfolder"], out["type"]))).convert("RGB"))
    assert result.shape == rgb.shape
    # what LoadImage -> (untouched) -> SaveImage does to a byte: float32 k/255, then x255 truncated
    saved = np.clip((rgb.astype(np.float32) / 255.0) * 255.0, 0, 255).astype(np.uint8)
    # the blend zone: the mask grown by blend (8) plus a pixel; everything else must be bit-identical
    import cv2

    zone = cv2.dilate((alpha == 0).astype(np.uint8), np.ones((19, 19), np.uint8)) > 0
    assert np.array_equal(result[~zone], saved[~zone])
    assert (result[alpha == 0] != saved[alpha == 0]).mean() > 0.5  # the faces were re-generated
    print(f"\n[i2p test] Face Inpaint, 2 faces, {steps} steps at 256: {run.seconds:.1f} s")
