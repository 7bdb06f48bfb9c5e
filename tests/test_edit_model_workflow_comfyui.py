"""The shipped edit-model graphs (``edit_model_portrait``, FLUX.2 klein; ``qwen_edit_portrait``,
Qwen-Image-Edit-2511) in a real ComfyUI keep the background bit-exact (tier ``comfyui``, under the
machine's ComfyUI lock).

tests/test_inpaint_edit_comfyui.py proves it for Face Inpaint alone (reduced DiTs, random text
embeddings); here the whole shipped graph runs with the full-size random test models: the random text
encoder at its real size (Qwen3-4B through CLIPLoader type flux2 and CLIPTextEncode + ReferenceLatent;
Qwen2.5-VL 7B through CLIPLoader type qwen_image and TextEncodeQwenImageEditPlus, vision tower included),
then swap, restore and score. The prompt is the shipped file with the CPU knobs and photos
(tests/shipped_workflows.py) plus output-only taps (MaskToImage / SaveImage on the parsing mask, the
inpainted image, the swapped image and the restore mask); nothing the shipped nodes compute is changed,
which the test checks.

Checked: Face Inpaint appended the crop after the face photo's reference (its ui text), its output equals
the photo outside its blend zone (the parsing mask grown by the shipped ``blend``), the swap changes
nothing outside that zone either, and the final image differs from the photo only inside the blend zone
and Face Restore's reported face mask, never in the rest of the frame.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import shipped_workflows as sw
from packload import pack_module

EDIT_TARGET = "appended as reference latent 2 (the edit target) after your 1 reference(s)"


def _node(prompt: dict, class_type: str) -> str:
    (nid,) = [n for n, node in prompt.items() if node["class_type"] == class_type]
    return nid


def _taps(prompt: dict) -> dict[str, tuple[str, int]]:
    """tap id -> (source node, output index): Face Inpaint's mask input, its image, Face Swap's image and
    Face Restore's face_mask, found by class type in the shipped graph."""
    inpaint = _node(prompt, "I2PFaceInpaint")
    return {"tap_mask": tuple(prompt[inpaint]["inputs"]["mask"]), "tap_inpaint": (inpaint, 0),
            "tap_swap": (_node(prompt, "I2PFaceSwap"), 0), "tap_restore_mask": (_node(prompt, "I2PFaceRestore"), 1)}


def _with_taps(prompt: dict) -> dict:
    out = dict(prompt)
    for tap, (src, idx) in _taps(prompt).items():
        image = [src, idx]
        if tap.endswith("mask"):
            out[f"{tap}_img"] = {"class_type": "MaskToImage", "inputs": {"mask": [src, idx]}}
            image = [f"{tap}_img", 0]
        out[tap] = {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": f"i2p_tap/{tap}"}}
    return out


def _saved(server, history: dict, node: str) -> np.ndarray:
    (img,) = history["outputs"][node]["images"]
    data = server.view(img["filename"], img["subfolder"], img["type"])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.comfyui
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sw.EDIT_GRAPHS)
def test_edit_graph_changes_nothing_outside_the_face_zones(name, comfyui_server):
    import cv2
    from skimage import data as skdata

    server = comfyui_server
    shipped = sw.shipped(name)
    inpaint_id = _node(shipped, "I2PFaceInpaint")
    photo = skdata.astronaut()
    face = np.asarray(Image.fromarray(photo).resize((384, 384)))
    names = {}
    for key, arr in (("reference.png", photo), ("face.png", face)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        names[key] = server.upload_image(buf.getvalue(), f"i2p_edit_{key}")
    prompt = sw.for_cpu(shipped)
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = names[node["inputs"]["image"]]
    tapped = _with_taps(prompt)
    assert sorted(sw.unexpected_changes(shipped, tapped)) == sorted(
        f"node {t} added" for t in tapped if t not in shipped)  # the shipped nodes are as shipped

    server.free_memory()
    run = server.run_prompt(tapped, timeout=1700)
    assert run.succeeded, f"{run.error}\n{server.log_tail(60)}"
    assert all(EDIT_TARGET in t for t in run.history["outputs"][inpaint_id]["text"]), run.history["outputs"][inpaint_id]
    final = _saved(server, run.history, _node(shipped, "SaveImage"))
    inpaint = _saved(server, run.history, "tap_inpaint")
    swapped = _saved(server, run.history, "tap_swap")
    mask = _saved(server, run.history, "tap_mask")[..., 0].astype(np.float32) / 255.0
    restore_mask = _saved(server, run.history, "tap_restore_mask")[..., 0] > 0

    # what LoadImage -> (untouched) -> SaveImage does to a byte: float32 k/255, then x255 truncated
    saved = np.clip((photo.astype(np.float32) / 255.0) * 255.0, 0, 255).astype(np.uint8)
    assert final.shape == inpaint.shape == saved.shape
    blend = int(shipped[inpaint_id]["inputs"]["blend"])
    alpha = pack_module("core.inpaint.crop").blend_alpha(mask, blend)
    # the blend zone, plus 2 px: the tapped mask went through 8 bits (values under 1/255 read as 0)
    zone = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert 0 < zone.mean() < 0.5, zone.mean()

    changed_inpaint = (inpaint != saved).any(axis=-1)
    assert int(changed_inpaint[~zone].sum()) == 0  # Face Inpaint: 0 px outside its blend zone
    assert changed_inpaint[zone].mean() > 0.3  # the face was re-generated
    changed_swap = (swapped != inpaint).any(axis=-1)
    face_zones = zone | restore_mask
    changed_final = (final != saved).any(axis=-1)
    outside = int(changed_final[~face_zones].sum())
    print(f"\n[i2p test] {name}: blend zone {zone.mean():.1%} of the frame, restore mask {restore_mask.mean():.1%}; "
          f"swap changed {changed_swap.mean():.1%} ({int(changed_swap[~zone].sum())} px outside the blend zone); "
          f"final changed {changed_final.mean():.1%}, {outside} px outside the face zones; {run.seconds:.0f} s")
    assert int(changed_swap[~zone].sum()) == 0  # the swap pastes inside the face, within the parsing mask
    assert outside == 0
    assert (~face_zones).mean() > 0.5  # most of the frame is checked, not a sliver
