"""I2P License Check and the audit behind it: the running prompt in, every model file it loads with its
licence out; 'require commercial' stops a graph with non-commercial or unknown files, naming them."""
from __future__ import annotations

import copy
import json

import pytest

from packload import PACK_ROOT, load_pack, pack_module

audit = pack_module("models.audit")
errors = pack_module("core.errors")
manifest = pack_module("models.manifest")
API = PACK_ROOT / "workflows" / "api"


def api(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text(encoding="utf-8"))


def node():
    return load_pack().NODE_CLASS_MAPPINGS["I2PLicenseCheck"]()


def check_id(prompt: dict) -> str:
    return next(nid for nid, n in prompt.items() if n["class_type"] == "I2PLicenseCheck")


def run(prompt: dict, mode: str):
    import torch

    img = torch.zeros(1, 8, 8, 3)
    return node().check(img, mode, images_2=img, prompt=prompt, unique_id=check_id(prompt))


def test_require_commercial_stops_the_recommended_graph_naming_faceid_buffalo_and_inswapper():
    prompt = api("recommended_portrait")
    with pytest.raises(errors.I2PError) as info:
        run(prompt, "require commercial")
    msg = str(info.value)
    title = {nid: n["_meta"]["title"] for nid, n in prompt.items()}
    for needle in ("ipadapter/ip-adapter-faceid-plusv2_sdxl.bin", "loras/ip-adapter-faceid-plusv2_sdxl_lora.safetensors",
                   "insightface/models/buffalo_l/det_10g.onnx", "insightface/models/buffalo_l/w600k_r50.onnx",
                   "insightface/inswapper_128.onnx"):
        assert needle in msg
    for cls in ("I2PIdentityAdapterLoader", "I2PFaceAnalyzerLoader", "I2PFaceSwap"):
        nid = next(k for k, n in prompt.items() if n["class_type"] == cls)
        assert f"#{nid} '{title[nid]}' ({cls})" in msg  # the offending node, by id and title
    # the commercial files of that graph are not blamed
    assert "RealVisXL" not in msg and "GFPGAN" not in msg and "CLIP-ViT-H" not in msg
    assert info.value.input_name == "mode" and "set mode to 'warn'" in msg


def test_warn_reports_and_passes_the_photos_through():
    import torch

    prompt = api("recommended_portrait")
    a, b = torch.rand(1, 8, 8, 3), torch.rand(1, 6, 6, 3)
    out = node().check(a, "warn", images_2=b, prompt=prompt, unique_id=check_id(prompt))
    images, images_2, images_3, text = out["result"]
    assert images is a and images_2 is b and images_3 is None
    assert text.startswith("VERDICT: NOT cleared for commercial use")
    assert "NO  #" in text and "ok  #" in text and out["ui"]["text"] == [text]
    assert "Caveat: trained on FFHQ" in text  # GFPGAN: commercial, with its training-data caveat


@pytest.mark.parametrize("name", ["commercial_portrait", "commercial_couple"])
def test_commercial_workflows_pass_require_commercial(name):
    text = run(api(name), "require commercial")["result"][3]
    assert text.startswith("VERDICT: every model file this graph loads is marked for commercial use")
    assert "face_detection_yunet_2023mar.onnx" in text and "glintr100.onnx" in text


def test_one_added_core_loader_with_a_non_commercial_or_unknown_file_stops_the_commercial_graph():
    base = api("commercial_portrait")
    ckpt = next(nid for nid, n in base.items() if n["class_type"] == "CheckpointLoaderSimple")
    for added, expect in (
        ({"class_type": "LoraLoader", "inputs": {"lora_name": "ip-adapter-faceid_sdxl_lora.safetensors",
                                                 "model": [ckpt, 0], "clip": [ckpt, 1], "strength_model": 1.0,
                                                 "strength_clip": 1.0}, "_meta": {"title": "Extra LoRA"}},
         "#900 'Extra LoRA' (LoraLoader): loras/ip-adapter-faceid_sdxl_lora.safetensors (non-commercial)"),
        ({"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-Mystery.pth"}},
         "#900 'UpscaleModelLoader' (UpscaleModelLoader): upscale_models/4x-Mystery.pth (unknown)"),
        ({"class_type": "SomeOtherPackLoader", "inputs": {"weights": "inswapper_128.onnx"}},
         "#900 'SomeOtherPackLoader' (SomeOtherPackLoader): insightface/inswapper_128.onnx (non-commercial)"),
        ({"class_type": "CLIPVisionLoader", "inputs": {"clip_name": ["77", 0]}},
         "#900 'CLIPVisionLoader' (CLIPVisionLoader): <clip_name: linked> (unknown)"),
    ):
        prompt = copy.deepcopy(base)
        prompt["900"] = added
        with pytest.raises(errors.I2PError) as info:
            run(prompt, "require commercial")
        assert expect in str(info.value)
        assert str(info.value).count("#") == 1  # only the added node is blamed


def test_face_analyzer_pack_choice_decides_its_files():
    files = audit.pack_files("I2PFaceAnalyzerLoader", {"pack": "buffalo_l"})
    assert {f for _, _, f in files} == {m.filename for m in manifest.in_group("buffalo_l")}
    files = audit.pack_files("I2PFaceAnalyzerLoader", {"pack": audit.PERMISSIVE_PACK})
    assert [(d, f) for _, d, f in files] == [("facedetection", "face_detection_yunet_2023mar.onnx"),
                                             ("insightface", "models/auraface/glintr100.onnx")]
    [(_, _, other)] = audit.pack_files("I2PFaceAnalyzerLoader", {"pack": "antelopev2"})
    assert other == "models/antelopev2/*.onnx" and audit._entry("insightface", other) is None


def test_same_file_name_in_another_pack_is_not_taken_for_auraface():
    # antelopev2 ships a glintr100.onnx too (InsightFace, non-commercial): only AuraFace's own path counts
    assert manifest.by_filename("insightface", "models/antelopev2/glintr100.onnx") is None
    assert manifest.by_filename("insightface", "models/auraface/glintr100.onnx").commercial is True
    assert manifest.by_filename("loras", "ipadapter/ip-adapter-faceid-plusv2_sdxl_lora.safetensors") is not None


def test_a_saved_identity_is_of_unknown_licence():
    """It holds embeddings made by whatever models were used when it was saved: never called clean."""
    prompt = {"1": {"class_type": "I2PLoadIdentity", "inputs": {"identity_file": "person.safetensors"}}}
    [found] = audit.audit(prompt).files
    assert found.file == "identities/person.safetensors" and found.verdict == "unknown"


def test_swap_node_files_follow_its_widgets():
    ghost = audit.pack_files("I2PFaceSwap", {"swap_model": "ghost/G_unet_2blocks.pth", "resolution_boost": "none",
                                             "content_safety": "off"})
    assert [(d, f) for _, d, f in ghost] == [("ghost", "G_unet_2blocks.pth"), ("ghost", "backbone.pth")]
    boosted = audit.pack_files("I2PFaceSwap", {"swap_model": "inswapper_128.onnx", "resolution_boost": "GFPGANv1.4.pth",
                                               "content_safety": "on"})
    assert ("facerestore_models", "GFPGANv1.4.pth") in [(d, f) for _, d, f in boosted]
    assert any(d == "nsfw_detector" for _, d, _ in boosted)
    lora_off = audit.pack_files("I2PIdentityAdapterLoader", {"ipadapter_file": "ip-adapter-faceid_sdxl.bin",
                                                             "lora_strength": 0.0})
    assert [d for _, d, _ in lora_off] == ["ipadapter"]


def test_the_audit_constants_match_the_nodes():
    swap = pack_module("nodes.face_swap")
    assert (audit.GHOST_PREFIX, audit.NO_BOOST) == (swap.GHOST_PREFIX, swap.NO_BOOST)
    assert audit.PERMISSIVE_PACK == pack_module("core.faces.permissive").PACK


def test_every_pack_node_with_a_model_choice_is_known_to_the_audit():
    """A new pack loader must teach the audit which files it loads, or the check would miss them."""
    shows_only = {"I2PModelLicenses"}  # its 'model' choice is a manifest id to display, nothing is loaded
    for name, cls in load_pack().NODE_CLASS_MAPPINGS.items():
        if name in shows_only:
            continue
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, value in (spec.get(section) or {}).items():
                if isinstance(value[0], list) and any(k in input_name for k in ("model", "file", "pack")):
                    assert audit.pack_files(name, {}) is not None, f"{name}.{input_name} is not audited"


def test_files_a_workflow_needs_are_the_files_the_check_reports():
    """portrait downloads what the workflow loads: one reading of the prompt, not two."""
    needed = [m.id for m in pack_module("models.workflow_models").models_for_prompt(api("commercial_portrait"))]
    assert needed == ["yunet-2023mar", "auraface-v1", "gfpgan-v1.4", "realvisxl-v4-inpainting"]
    assert not any(m.startswith(("buffalo_l", "bisenet")) for m in needed)


def test_gemini_node_is_named_as_a_service():
    text = audit.audit(api("auto_prompt")).report()
    assert "Gemini API" in text


def test_require_commercial_is_never_served_from_comfyuis_cache():
    """ComfyUI reuses a node whose inputs did not change; the graph around the check is not among its
    inputs, so the gate must re-run every time (IS_CHANGED NaN), while warn keeps caching."""
    cls = load_pack().NODE_CLASS_MAPPINGS["I2PLicenseCheck"]
    gate = cls.IS_CHANGED(mode="require commercial", images=None)
    assert gate != gate  # NaN: never equal to the last run's value
    assert cls.IS_CHANGED(mode="warn", images=None) == cls.IS_CHANGED(mode="warn", images=None)


def test_without_a_prompt_warn_says_so_and_require_commercial_refuses():
    import torch

    img = torch.zeros(1, 4, 4, 3)
    text = node().check(img, "warn")["result"][3]
    assert "nothing checked" in text
    with pytest.raises(errors.I2PError, match="nothing can be verified"):
        node().check(img, "require commercial")


# ----------------------------------------------------------------------------- real ComfyUI tier
@pytest.mark.comfyui
@pytest.mark.slow
def test_require_commercial_stops_a_graph_in_real_comfyui_before_any_face_is_detected(comfyui_server):
    """In a real ComfyUI: the hidden PROMPT reaches the node, and with one non-commercial node added to
    the shipped commercial graph (an inswapper swap after the inpaint) the run stops at the check,
    naming it, before any node that works on the photos has run. Needs the commercial graph's models
    (I2P_COMFY_TEST_MODELS=yunet-2023mar,auraface-v1,realvisxl-v4-inpainting,gfpgan-v1.4)."""
    import io

    from PIL import Image
    from skimage import data as skdata

    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, format="PNG")
    name = comfyui_server.upload_image(buf.getvalue(), "i2p_licence_ref.png")
    prompt = api("commercial_portrait")
    for node_ in prompt.values():
        if node_["class_type"] == "LoadImage":
            node_["inputs"]["image"] = name
    inpaint = next(nid for nid, n in prompt.items() if n["class_type"] == "I2PFaceInpaint")
    detect = [nid for nid, n in prompt.items() if n["class_type"] == "I2PDetectFaces"]
    prompt["900"] = {"class_type": "I2PFaceSwap", "_meta": {"title": "Added swap"},
                     "inputs": {"image": [inpaint, 0], "target_faces": [detect[0], 0], "source_image": [inpaint, 0],
                                "source_faces": [detect[1], 0], "swap_model": "inswapper_128.onnx",
                                "content_safety": "off"}}
    spec = load_pack().NODE_CLASS_MAPPINGS["I2PFaceSwap"].INPUT_TYPES()["required"]
    for key, value in spec.items():  # every other widget at its default
        if key not in prompt["900"]["inputs"]:
            opts = value[1]
            prompt["900"]["inputs"][key] = opts["default"] if "default" in opts else value[0][0]
    run = comfyui_server.run_prompt(prompt, timeout=600)
    err = run.error
    assert err is not None, comfyui_server.log_tail(40)
    assert err["node_type"] == "I2PLicenseCheck", err
    assert "#900 'Added swap' (I2PFaceSwap): insightface/inswapper_128.onnx (non-commercial)" in err["exception_message"]
    ran = {prompt[e["node"]]["class_type"] for e in run.of_type("executing") if e.get("node") in prompt}
    assert ran <= {"LoadImage", "CheckpointLoaderSimple", "I2PFaceAnalyzerLoader", "I2PLicenseCheck"}, ran
