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

    np.testing.assert_array_equal(crop, face_align.norm_crop(img, face.kps, image_size=224))
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


def test_hair_and_blend_crops(models):
    img, face = astronaut(), astronaut_face()
    tight = enc.aligned_face_crop(img, face.kps)
    hair = enc.loose_face_crop(img, face.bbox)
    assert hair.shape == tight.shape
    mid = enc.blend_crops(tight, hair, 0.5)
    np.testing.assert_allclose(mid.astype(float), (tight.astype(float) + hair.astype(float)) / 2, atol=1)
    a = enc.encode_identity([img], [face], models["clip"], False, "blend", 0.0)
    b = enc.encode_identity([img], [face], models["clip"], False, "face")
    torch.testing.assert_close(a.clip_hidden, b.clip_hidden)
    assert a.embedding is None


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
