"""The manifest is the one table of weights: every entry must say where it goes, where it comes from,
how to check it, and what it may be used for - and the editor node must show that honestly."""
from __future__ import annotations

import re

import pytest

from packload import pack_module

manifest = pack_module("models.manifest")
dl = pack_module("models.download")

# Folders ComfyUI itself defines, plus the ones the pack registers.
CORE_FOLDERS = {"checkpoints", "loras", "clip_vision", "vae", "controlnet", "upscale_models", "diffusion_models",
                "text_encoders"}  # ComfyUI core folders (text_encoders: also models/clip)
KNOWN_FOLDERS = CORE_FOLDERS | set(manifest.MODEL_FOLDERS)


def test_ids_are_unique_and_ids_look_like_ids():
    ids = [m.id for m in manifest.MODELS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", i, re.I) for i in ids)


def test_target_paths_are_unique():
    paths = [m.relpath for m in manifest.MODELS]
    assert len(paths) == len(set(paths))


@pytest.mark.parametrize("m", manifest.MODELS, ids=lambda m: m.id)
def test_every_entry_is_complete(m):
    assert m.folder in KNOWN_FOLDERS, f"{m.id}: unknown ComfyUI folder {m.folder}"
    assert m.filename and not m.filename.startswith("/") and "\\" not in m.filename
    assert m.license.strip(), f"{m.id}: no licence"
    assert m.license_url.startswith("https://"), f"{m.id}: no licence URL"
    assert isinstance(m.commercial, bool)
    assert m.url.startswith("https://"), f"{m.id}: no source URL"
    assert isinstance(m.size, int) and m.size >= 0
    assert m.sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", m.sha256), f"{m.id}: sha256 must be 64 lowercase hex"
    assert m.used_by.strip()


@pytest.mark.parametrize("m", [m for m in manifest.MODELS if not m.sha256], ids=lambda m: m.id)
def test_entries_without_sha256_are_refused_by_the_downloader(m, tmp_path):
    out = dl.download(m, tmp_path, show_progress=False, log=lambda s: None)
    assert out.status == "refused" and "--allow-unverified" in out.message
    assert list(tmp_path.iterdir()) == []  # refused before any connection or folder


def test_file_extensions_are_ones_the_folder_accepts():
    for m in manifest.MODELS:
        exts = manifest.MODEL_FOLDERS.get(m.folder)
        if exts:
            assert any(m.filename.endswith(e) for e in exts), f"{m.id}: {m.filename} not in {sorted(exts)}"


def test_insightface_and_faceid_weights_are_non_commercial():
    by_id = {m.id: m for m in manifest.MODELS}
    insightface = [m for m in manifest.MODELS if m.group == "buffalo_l" or m.id.startswith("inswapper")]
    faceid = [m for m in manifest.MODELS if m.id.startswith("faceid")]
    assert len(insightface) >= 6 and len(faceid) >= 2
    for m in insightface + faceid + [by_id["ghost-arcface"]]:
        assert m.commercial is False, f"{m.id} must be marked non-commercial"
        assert "non-commercial" in m.license.lower()
    # and the plainly permissive ones are not flagged by mistake
    for model_id in ("gfpgan-v1.4", "clip-vit-h-14", "ip-adapter-sdxl-vit-h", "realvisxl-v4-inpainting"):
        assert by_id[model_id].commercial is True


def test_folders_match_what_ipadapter_plus_and_reactor_users_have():
    rel = {m.id: m.relpath for m in manifest.MODELS}
    assert rel["inswapper_128"] == "insightface/inswapper_128.onnx"
    assert rel["gfpgan-v1.4"] == "facerestore_models/GFPGANv1.4.pth"
    assert rel["clip-vit-h-14"] == "clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    assert rel["faceid-plusv2-sdxl"] == "ipadapter/ip-adapter-faceid-plusv2_sdxl.bin"
    assert rel["faceid-plusv2-sdxl-lora"].startswith("loras/")
    assert rel["nsfw-vit"].startswith("nsfw_detector/vit-base-nsfw-detector/")
    assert {m.relpath for m in manifest.in_group("buffalo_l")} == {
        f"insightface/models/buffalo_l/{n}"
        for n in ("det_10g.onnx", "w600k_r50.onnx", "genderage.onnx", "2d106det.onnx", "1k3d68.onnx")
    }


def test_license_text_lookup():
    swap = manifest.license_text("insightface", "inswapper_128.onnx")
    assert "NON-COMMERCIAL" in swap and "insightface" in swap.lower()
    gfpgan = manifest.license_text("facerestore_models", "GFPGANv1.4.pth")
    assert "commercial use allowed" in gfpgan and "Apache-2.0" in gfpgan
    # an alias and a file in a sub-folder resolve to the same entry
    assert "MIT" in manifest.license_text("clip_vision", "model.safetensors")
    assert "NON-COMMERCIAL" in manifest.license_text("loras", "ipadapter/ip-adapter-faceid-plusv2_sdxl_lora.safetensors")
    unknown = manifest.license_text("checkpoints", "my_merge.safetensors")
    assert "not in the IP-to-Portrait manifest" in unknown


def test_by_id_names_the_known_ids_on_a_typo():
    with pytest.raises(KeyError, match="inswapper_128"):
        manifest.by_id("inswaper")


# ------------------------------------------------------------------------------ I2PModelLicenses node
@pytest.fixture
def fake_tree(tmp_path, monkeypatch):
    """A models/ tree with a few manifest files present (their bytes do not matter here)."""
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    for model_id in ("inswapper_128", "gfpgan-v1.4", "buffalo_l-det_10g"):
        m = manifest.by_id(model_id)
        path = tmp_path / m.folder / m.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path


def _node():
    return pack_module("nodes.model_info").I2PModelLicenses()


def test_licenses_node_reports_installed_and_missing(fake_tree):
    out = _node().report("all models", False)
    text = out["result"][0]
    assert out["ui"]["text"] == [text]
    lines = text.splitlines()
    assert len(lines) == len(manifest.MODELS)
    line = {m.id: lines[i] for i, m in enumerate(manifest.MODELS)}
    assert line["inswapper_128"].startswith("[installed] models/insightface/inswapper_128.onnx")
    assert "NON-COMMERCIAL" in line["inswapper_128"]
    assert line["gfpgan-v1.4"].startswith("[installed]") and "commercial use allowed" in line["gfpgan-v1.4"]
    assert line["buffalo_l-det_10g"].startswith("[installed]")
    assert line["faceid-plusv2-sdxl"].startswith("[missing] models/ipadapter/ip-adapter-faceid-plusv2_sdxl.bin")


def test_licenses_node_filters_non_commercial(fake_tree):
    text = _node().report("all models", True)["result"][0]
    expected = [m for m in manifest.MODELS if not m.commercial]
    assert len(text.splitlines()) == len(expected)
    assert "GFPGANv1.4.pth" not in text and "NON-COMMERCIAL" in text
    assert all("NON-COMMERCIAL" in line for line in text.splitlines())


def test_licenses_node_single_model(fake_tree):
    text = _node().report("gfpgan-v1.4", True)["result"][0]
    assert text == "no model matches"  # GFPGAN is commercial, so the non-commercial filter hides it
    text = _node().report("inswapper_128", False)["result"][0]
    assert text.count("\n") == 0 and text.startswith("[installed]")
