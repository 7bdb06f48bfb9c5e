"""Identity encoding on a real photo (aligned CLIP crop, penultimate hidden states, the uncond
convention), save/load, and the stage end to end through the nodes on a ModelPatcher-like object."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from packload import pack_module
from test_identity import FakePatcher

enc = pack_module("core.identity.encoding")
apply_mod = pack_module("core.identity.apply")
ipa = pack_module("models.ipadapter")
ft = pack_module("core.faces.types")
errors = pack_module("core.errors")
nodes = pack_module("nodes.identity")


def astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def astronaut_face(seed=0):
    """skimage's astronaut: landmarks read off the photo (eyes, nose, mouth corners)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(512).astype(np.float32)
    return ft.Face(bbox=np.array([175, 70, 275, 180], np.float32),
                   kps=np.array([[203, 102], [247, 102], [225, 125], [208, 145], [243, 145]], np.float32),
                   det_score=0.99, embedding=e / np.linalg.norm(e))


@pytest.fixture(scope="module")
def models(test_models):
    paths = {m: test_models.get(m) for m in ("faceid-plusv2-sdxl", "faceid-sdxl", "ip-adapter-sdxl-vit-h",
                                             "clip-vit-h-14", "faceid-plusv2-sdxl-lora")}
    paths["clip"] = enc.load_hf_clip_vision(paths["clip-vit-h-14"])
    return paths


class FakeComfyClipVision:
    """Mimics ComfyUI's ClipVisionModel.encode_image: resize/crop, 8-bit rounding, normalise,
    penultimate hidden states, image_embeds (wrapping the same HF model)."""

    def __init__(self, hf_model, hidden, proj):
        self.hf = hf_model
        self.config = {"hidden_size": hidden, "projection_dim": proj}

    def encode_image(self, image):
        x = (torch.clip(255.0 * image, 0, 255).round() / 255.0)
        px = enc.clip_preprocess(x)
        with torch.no_grad():
            out = self.hf(pixel_values=px, output_hidden_states=True)
        return {"penultimate_hidden_states": out.hidden_states[-2], "image_embeds": out.image_embeds}


def test_clip_branch_uses_aligned_crop_and_penultimate_states(models):
    img, face = astronaut(), astronaut_face()
    clip = models["clip"]
    ident = enc.encode_identity([img], [face], clip, need_embedding=True, clip_input="face")
    crop = enc.aligned_face_crop(img, face.kps)
    assert crop.shape == (224, 224, 3)
    from insightface.utils import face_align

    # the pack's float64 least-squares fit vs insightface's float32 scikit-image estimate: affines equal
    # to ~1e-4, so a few pixels may round one level apart
    ref = face_align.norm_crop(img, face.kps, image_size=224)
    diff = np.abs(crop.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    px = enc.clip_preprocess(torch.from_numpy(crop[None].astype(np.float32) / 255))
    with torch.no_grad():
        out = clip.model(pixel_values=px, output_hidden_states=True)
    assert len(out.hidden_states) == clip.model.config.num_hidden_layers + 1
    torch.testing.assert_close(ident.clip_hidden, out.hidden_states[-2])  # penultimate, no post-layernorm
    assert ident.clip_hidden.shape == (1, 257, clip.hidden_size)
    whole = enc.clip_preprocess(torch.from_numpy(img[None].astype(np.float32) / 255))
    with torch.no_grad():
        whole_h = clip.model(pixel_values=whole, output_hidden_states=True).hidden_states[-2]
    assert not torch.allclose(ident.clip_hidden, whole_h)  # not the whole photo (the seed's mistake)
    np.testing.assert_allclose(np.linalg.norm(ident.embedding.numpy(), axis=1), 1.0, rtol=1e-5)


def test_uncond_convention_is_zero_normalised_pixels(models):
    clip = models["clip"]
    hidden, _ = clip.encode_uncond()
    with torch.no_grad():
        zero = clip.model(pixel_values=torch.zeros(1, 3, 224, 224), output_hidden_states=True).hidden_states[-2]
        black = clip.model(pixel_values=enc.clip_preprocess(torch.zeros(1, 224, 224, 3)),
                           output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(hidden, zero)
    assert not torch.allclose(hidden, black, atol=1e-3)  # IPAdapter_plus' black image is another convention
    assert enc.UNCOND_CONVENTION == "zero-pixels"
    # the IMAGE that normalises to zero pixels (used where only encode_image is reachable)
    assert float(enc.clip_preprocess(enc.mean_colour_image()).abs().max()) < 1e-6


def test_comfy_clip_vision_backend_gives_the_same_features(models):
    img, face = astronaut(), astronaut_face()
    hf = models["clip"]
    fake = FakeComfyClipVision(hf.model, hf.hidden_size, hf.projection_dim)
    a = enc.encode_identity([img], [face], hf, True, "face")
    b = enc.encode_identity([img], [face], enc.clip_encoder(fake), True, "face")
    torch.testing.assert_close(a.clip_hidden, b.clip_hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.clip_embeds, b.clip_embeds, atol=1e-5, rtol=1e-5)


class RecordingEncoder(enc.ClipEncoder):
    """A stand-in CLIP that records every image it is given; its features are the images' pixels."""

    def __init__(self):
        self.seen = []

    def encode(self, images):
        self.seen.extend(np.rint(images.numpy() * 255).astype(np.uint8))
        flat = images.reshape(images.shape[0], -1)[:, :64].float()
        return flat[:, None, :].repeat(1, 3, 1), flat[:, :16]

    def encode_uncond(self):
        return torch.zeros(1, 3, 64), torch.zeros(1, 16)


def test_blend_mode_mixes_features_never_pixels_of_differently_aligned_crops():
    """CLIP blend: the aligned face (ArcFace geometry) and the loose crop (box geometry) put the eyes on
    different pixels, so CLIP must see each crop as it is and the mix must happen on its features."""
    img, face = astronaut(), astronaut_face()
    tight = enc.aligned_face_crop(img, face.kps)
    hair = enc.loose_face_crop(img, face.bbox)
    assert hair.shape == tight.shape
    # the two geometries really differ: the eyes are much further apart in the aligned crop
    al = pack_module("core.faces.align")
    eye_gap = float(np.linalg.norm(face.kps[0] - face.kps[1]))
    gap_tight = eye_gap * al.scale_of(al.arcface_affine(face.kps, 224))
    gap_hair = eye_gap * 224 / (2.0 * max(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]))
    assert gap_tight > 1.3 * gap_hair, (gap_tight, gap_hair)
    rec = RecordingEncoder()
    ident = enc.encode_identity([img], [face], rec, False, "blend", 0.3)
    assert len(rec.seen) == 2
    assert np.array_equal(rec.seen[0], tight) and np.array_equal(rec.seen[1], hair)  # no pixel blend
    h_tight, e_tight = rec.encode(torch.from_numpy(tight[None].astype(np.float32) / 255))
    h_hair, e_hair = rec.encode(torch.from_numpy(hair[None].astype(np.float32) / 255))
    torch.testing.assert_close(ident.clip_hidden, 0.7 * h_tight + 0.3 * h_hair)
    torch.testing.assert_close(ident.clip_embeds, 0.7 * e_tight + 0.3 * e_hair)
    assert not hasattr(enc, "blend_crops")


def test_blend_mode_ends_equal_the_single_crop_modes(models):
    img, face = astronaut(), astronaut_face()
    a = enc.encode_identity([img], [face], models["clip"], False, "blend", 0.0)
    b = enc.encode_identity([img], [face], models["clip"], False, "face")
    torch.testing.assert_close(a.clip_hidden, b.clip_hidden)
    c = enc.encode_identity([img], [face], models["clip"], False, "blend", 1.0)
    d = enc.encode_identity([img], [face], models["clip"], False, "hair")
    torch.testing.assert_close(c.clip_hidden, d.clip_hidden)
    torch.testing.assert_close(c.clip_embeds, d.clip_embeds)
    assert a.embedding is None


def test_loose_crop_is_antialiased():
    """A fine stripe pattern (period 2 px) shrunk ~3x must come out as its mean grey, not as moire;
    cv2.warpAffine with INTER_AREA (the old crop) is plain bilinear and keeps the stripes."""
    import cv2

    img = np.zeros((900, 900, 3), np.uint8)
    img[:, ::2] = 255
    bbox = np.array([300, 300, 630, 630], np.float32)  # side 660 -> 224: scale 0.34
    crop = enc.loose_face_crop(img, bbox).astype(np.float32)
    assert abs(crop.mean() - 127.5) < 4 and crop[20:-20, 20:-20].std() < 6
    side = 660.0
    m = np.array([[224 / side, 0, 112 - 465 * 224 / side], [0, 224 / side, 112 - (465 - 66) * 224 / side]])
    aliased = cv2.warpAffine(img, m, (224, 224), flags=cv2.INTER_AREA).astype(np.float32)
    assert aliased[20:-20, 20:-20].std() > 30  # what the antialiasing removes


def test_average_of_several_sources(models):
    img = astronaut()
    f1, f2 = astronaut_face(1), astronaut_face(2)
    ident = enc.encode_identity([img, img], [f1, f2], models["clip"], True, "face")
    assert ident.sources == 2 and ident.embedding.shape == (2, 512)
    avg = ident.averaged()
    want = (f1.embedding + f2.embedding) / np.linalg.norm(f1.embedding + f2.embedding)
    np.testing.assert_allclose(avg.embedding[0].numpy(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(avg.clip_hidden, ident.clip_hidden.mean(0, keepdim=True))


def test_save_load_roundtrip_and_atomic(models, tmp_path, monkeypatch):
    ident = enc.encode_identity([astronaut()], [astronaut_face()], models["clip"], True, "face")
    path = enc.save_identity(ident, tmp_path / "ids" / "anna.safetensors")
    back = enc.load_identity(path)
    for k in ("embedding", "clip_hidden", "clip_uncond_hidden", "clip_embeds"):
        torch.testing.assert_close(getattr(back, k), getattr(ident, k))
    assert back.meta["uncond"] == "zero-pixels" and back.sources == 1

    import safetensors.torch as st

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(OSError):
        enc.save_identity(ident, tmp_path / "ids" / "bob.safetensors")
    assert sorted(os.listdir(tmp_path / "ids")) == ["anna.safetensors"]  # no half file, no temp left
    monkeypatch.undo()
    other = tmp_path / "other.safetensors"
    st.save_file({"x": torch.zeros(1)}, str(other))
    with pytest.raises(ValueError, match="not an IP-to-Portrait identity"):
        enc.load_identity(other)


# ------------------------------------------------------------------------------ end to end / nodes
def image_tensor():
    return torch.from_numpy(astronaut()[None].astype(np.float32) / 255.0)


def faces_value(n=1):
    return ft.Faces(sets=[ft.FaceSet(image_size=(512, 512), faces=[astronaut_face(i)]) for i in range(n)])


def test_apply_node_patches_a_clone_and_reports_steps(models):
    adapter = ipa.load_ipadapter(models["faceid-plusv2-sdxl"])
    base = FakePatcher()
    node = nodes.I2PApplyIdentity()
    out = node.apply(base, "FaceID Plus v2", 0.8, 1.2, 0.0, 0.9, True, 30, adapter=adapter,
                     clip_vision=models["clip"], image=image_tensor(), faces=faces_value())
    model, ident, text = out["result"]
    assert model is not base and base.calls == []
    assert "identity active in steps 1..27 of 30 (27 steps)" in text and "v2 shortcut 1.2" in text
    info = model.model_options["transformer_options"]["i2p_identity"]
    assert info["mode"] == "faceid_plus_v2" and info["weight"] == 0.8 and info["stop_at"] == 0.9
    assert ident.clip_hidden is not None and ident.embedding is not None
    # the term really is in the layers: a model call at the first schedule sigma adds it
    fn = model.model_options["transformer_options"]["patches_replace"]["attn2"][("middle", 0, 3)]
    q, k, v = torch.randn(2, 16, 1280), torch.randn(2, 77, 1280), torch.randn(2, 77, 1280)
    sched = torch.tensor([10.0, 5.0, 1.0, 0.0])
    on = fn(q, k, v, {"n_heads": 20, "cond_or_uncond": [0, 1], "sigmas": torch.tensor([10.0, 10.0]),
                      "sample_sigmas": sched})
    off = fn(q, k, v, {"n_heads": 20, "cond_or_uncond": [0, 1], "sigmas": torch.tensor([1.0, 1.0]),
                       "sample_sigmas": sched})  # step 3 of 3 with stop_at 0.9 -> round(2.7) = 3 steps: on
    plain = apply_mod.sdpa(q, k, v, 20)
    assert not torch.allclose(on, plain) and not torch.allclose(off, plain)
    # a saved identity gives the same tokens without image or faces
    out2 = node.apply(base, "FaceID Plus v2", 0.8, 1.2, 0.0, 0.34, True, 3, adapter=adapter, identity=ident)
    fn2 = out2["result"][0].model_options["transformer_options"]["patches_replace"]["attn2"][("middle", 0, 3)]
    torch.testing.assert_close(fn2.patch.cond, fn.patch.cond)
    late = fn2(q, k, v, {"n_heads": 20, "cond_or_uncond": [0, 1], "sigmas": torch.tensor([5.0, 5.0]),
                         "sample_sigmas": sched})  # step 2 of 3, stop_at 0.34 -> 1 step: off
    torch.testing.assert_close(late, plain)


def test_apply_modes_and_errors(models, tmp_path):
    base = FakePatcher()
    plus = ipa.load_ipadapter(models["faceid-plusv2-sdxl"])
    plain = ipa.load_ipadapter(models["ip-adapter-sdxl-vit-h"])
    faceid = ipa.load_ipadapter(models["faceid-sdxl"])
    imgs = [astronaut()]
    for mode, adapter in (("faceid", faceid), ("standard", plain), ("clip_blend", plain)):
        m, ident, text = apply_mod.apply_identity(base, mode, 1.0, 0.0, 1.0, adapter=adapter, images=imgs,
                                                  faces=faces_value(), clip_vision=models["clip"])
        assert m.model_options["transformer_options"]["i2p_identity"]["mode"] == mode
    m, _, text = apply_mod.apply_identity(base, "simple", 1.0, 0.0, 1.0)
    assert "not changed" in text and "patches_replace" not in m.model_options["transformer_options"]
    with pytest.raises(errors.I2PError, match="FaceID Plus v2.*ip-adapter-faceid-plusv2_sdxl.bin"):
        apply_mod.apply_identity(base, "faceid_plus_v2", 1.0, 0.0, 1.0, adapter=faceid, images=imgs,
                                 faces=faces_value(), clip_vision=models["clip"])
    with pytest.raises(errors.I2PError, match="stop_at"):
        apply_mod.apply_identity(base, "faceid", 1.0, 0.5, 0.5, adapter=faceid, images=imgs, faces=faces_value())
    with pytest.raises(errors.I2PError, match="needs a CLIP vision model"):
        apply_mod.apply_identity(base, "faceid_plus_v2", 1.0, 0.0, 1.0, adapter=plus, images=imgs, faces=faces_value())
    with pytest.raises(errors.I2PError, match="connect 'faces'"):
        apply_mod.apply_identity(base, "faceid", 1.0, 0.0, 1.0, adapter=faceid, images=imgs)
    # a CLIP of another width (think ViT-bigG on a ViT-H adapter): named, before anything is patched
    from model_factory.ipadapter_models import clip_vision_model

    wide = enc.HFClipEncoder(clip_vision_model("tiny", hidden=96), "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors")
    with pytest.raises(errors.I2PError) as err:
        apply_mod.apply_identity(base, "faceid_plus_v2", 1.0, 0.0, 1.0, adapter=plus, images=imgs,
                                 faces=faces_value(), clip_vision=wide)
    assert "CLIP-ViT-bigG-14" in str(err.value) and plus.name in str(err.value)
    assert base.calls == []


class FakeSDXLModel(FakePatcher):
    """A ModelPatcher whose model says what its UNet's context width is, like ComfyUI's."""

    def __init__(self, context_dim):
        super().__init__()
        cfg = type("Cfg", (), {"unet_config": {"context_dim": context_dim}})()
        self.model = type("M", (), {"model_config": cfg})()


def test_adapter_width_must_match_model(models):
    plus = ipa.load_ipadapter(models["faceid-plusv2-sdxl"])
    with pytest.raises(errors.I2PError, match="context width of 128 but the MODEL's is 2048"):
        apply_mod.apply_identity(FakeSDXLModel(2048), "faceid_plus_v2", 1.0, 0.0, 1.0, adapter=plus,
                                 images=[astronaut()], faces=faces_value(), clip_vision=models["clip"])


def test_loader_node_reports_lora_state(models, tmp_path):
    loader = nodes.I2PIdentityAdapterLoader()
    assert "ip-adapter-faceid-plusv2_sdxl.bin" in loader.INPUT_TYPES()["required"]["ipadapter_file"][0]
    base = FakePatcher()
    model, adapter, text = loader.load(base, "ip-adapter-faceid-plusv2_sdxl.bin", 0.6, "auto")["result"]
    assert adapter.family == "faceid_plus" and model is not base
    assert "found but NOT applied" in text and "non-commercial" in text.lower()
    portrait = models["faceid-plusv2-sdxl"].parent / "ip-adapter-faceid-portrait_sdxl.bin"
    shutil.copy(models["faceid-plusv2-sdxl"], portrait)
    _, _, text = loader.load(base, portrait.name, 0.6, "auto")["result"]
    assert "ip-adapter-faceid-portrait_sdxl_lora.safetensors is MISSING" in text
    marked = FakePatcher()
    marked.model_options["transformer_options"]["i2p_identity_lora"] = "ip-adapter-faceid-plusv2_sdxl_lora.safetensors"
    _, _, text = loader.load(marked, "ip-adapter-faceid-plusv2_sdxl.bin", 0.6, "auto")["result"]
    assert "already on this MODEL" in text  # a second loader in the chain does not stack the LoRA
    _, _, text = loader.load(base, "ip-adapter_sdxl_vit-h.safetensors", 0.6, "auto")["result"]
    assert "not trained with one" in text
    with pytest.raises(errors.I2PError, match="not found in models/ipadapter"):
        loader.load(base, "nope.bin", 0.6, "auto")


def test_identity_encoded_once_per_source(models, monkeypatch):
    """Changing weight or stop_at re-runs the node but not CLIP: the encoding is reused."""
    calls = []
    real = enc.encode_identity

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(apply_mod, "encode_identity", counting)
    apply_mod._CACHE.clear()
    adapter = ipa.load_ipadapter(models["faceid-plusv2-sdxl"])
    for weight, stop in ((1.0, 0.9), (0.6, 0.7), (0.8, 1.0)):
        apply_mod.apply_identity(FakePatcher(), "faceid_plus_v2", weight, 0.0, stop, adapter=adapter,
                                 images=[astronaut()], faces=faces_value(), clip_vision=models["clip"])
    assert len(calls) == 1
    other = astronaut_face(5)  # another face (embedding) is another identity
    apply_mod.apply_identity(FakePatcher(), "faceid_plus_v2", 1.0, 0.0, 0.9, adapter=adapter, images=[astronaut()],
                             faces=ft.Faces([ft.FaceSet((512, 512), [other])]), clip_vision=models["clip"])
    assert len(calls) == 2


def test_missing_source_face_fix_names_real_nodes():
    """The fix text of a missing source face names nodes that exist (no "I2P Analyze Faces")."""
    import re

    with pytest.raises(errors.I2PError) as info:
        apply_mod.pick_source_faces([astronaut()])
    names = set(pack_module("nodes").NODE_DISPLAY_NAME_MAPPINGS.values())
    mentioned = re.findall(r"I2P(?: [A-Z][a-z]+)+", info.value.fix)
    assert mentioned and all(m in names for m in mentioned), (mentioned, info.value.fix)
    assert "I2P Detect Faces" in mentioned


@pytest.mark.parametrize("kind, name", [("flux2", "FLUX.2"), ("qwen_image", "Qwen-Image")])
def test_dit_model_is_refused_naming_node_input_and_fix(models, kind, name):
    """The identity patch is SDXL cross-attention only: a FLUX.2 / Qwen-Image MODEL (ComfyUI's model
    objects, read by core/model_family.py) is refused before anything is encoded or patched."""
    from test_inpaint_edit_models import FakeDiT

    plus = ipa.load_ipadapter(models["faceid-plusv2-sdxl"])
    dit = FakeDiT(kind)
    before = repr(dit.model_options)
    with pytest.raises(errors.I2PError) as err:
        apply_mod.apply_identity(dit, "faceid_plus_v2", 1.0, 0.0, 1.0, adapter=plus, images=[astronaut()],
                                 faces=faces_value(), clip_vision=models["clip"])
    e = err.value
    assert (e.node, e.input_name) == ("I2P Apply Identity", "model")
    assert f"the MODEL is {name}" in str(e) and "I2P Face Inpaint" in str(e) and "SDXL checkpoint" in str(e)
    assert repr(dit.model_options) == before
    m, _, text = apply_mod.apply_identity(dit, "simple", 1.0, 0.0, 1.0)  # changes nothing: allowed
    assert "not changed" in text
