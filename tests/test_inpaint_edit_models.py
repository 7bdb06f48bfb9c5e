"""Face Inpaint with instruction-edit DiTs (FLUX.2 [klein], Qwen-Image-Edit) through fake models, in CI
without ComfyUI: the family is read from the MODEL's own objects, sizes are multiples of 16, the crop
becomes the last reference latent only where the user's conditioning carries references, the SDXL-only
parts (9-channel conditioning, identity patch) are skipped with a note, and the background outside the
blend zone is bit-identical. The real ComfyUI classes are exercised in test_inpaint_edit_comfyui.py."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from packload import pack_module
from test_inpaint_flow import couple

adapter = pack_module("core.comfy_adapter")
fam = pack_module("core.inpaint.family")
mf = pack_module("core.model_family")
fi = pack_module("core.inpaint.flow")
sampling = pack_module("core.inpaint.sampling")
node_mod = pack_module("nodes.face_inpaint")

# what ComfyUI's classes hold for each family (comfy/latent_formats.py, supported_models.py, model_base.py)
FAMILIES = {
    "flux2": dict(channels=128, dims=2, downscale=16, patch=1, image_model="flux2", diffusion="Flux"),
    "qwen_image": dict(channels=16, dims=3, downscale=8, patch=2, image_model="qwen_image",
                       diffusion="QwenImageTransformer2DModel"),
}


class FakeDiT:
    """A ModelPatcher look-alike whose ``.model`` carries the attributes ComfyUI's model objects have."""

    def __init__(self, kind: str, identity: dict | None = None, concat_keys=()):
        f = FAMILIES[kind]
        self.kind = kind
        diffusion = type(f["diffusion"], (), {"patch_size": f["patch"]})()
        config = type("Flux2" if kind == "flux2" else "QwenImage", (), {"unet_config": {"image_model": f["image_model"]}})()
        latent_format = SimpleNamespace(latent_channels=f["channels"], latent_dimensions=f["dims"],
                                        spacial_downscale_ratio=f["downscale"])
        self.model = type(config.__class__.__name__, (), {
            "latent_format": latent_format, "model_config": config, "diffusion_model": diffusion,
            "memory_usage_factor_conds": ("ref_latents",), "concat_keys": concat_keys})()
        options = {"i2p_identity": identity} if identity else {}
        if identity:
            marked = SimpleNamespace(inner=None, **{pack_module("core.identity.contract").PATCH_MARKER: True})
            options["patches_replace"] = {"attn2": {("input", 4, 0): marked}}
        self.model_options = {"transformer_options": options}

    def clone(self):
        twin = FakeDiT.__new__(FakeDiT)
        twin.kind, twin.model = self.kind, self.model
        twin.model_options = {**self.model_options,
                              "transformer_options": dict(self.model_options["transformer_options"])}
        return twin


class FakeVAE:
    """Encodes to the family's latent (FLUX.2: 128 channels at /16; Qwen-Image: Wan 2.1's 5-D 16-channel
    latent at /8) by average pooling; decodes by nearest upsampling, 5-D for Qwen as ComfyUI's Wan VAE."""

    def __init__(self, kind: str):
        self.f = FAMILIES[kind]

    def encode(self, pixels):
        d = self.f["downscale"]
        assert pixels.shape[1] % d == 0 and pixels.shape[2] % d == 0, "crop not a multiple of the VAE's downscale"
        pooled = torch.nn.functional.avg_pool2d(pixels.permute(0, 3, 1, 2), d)
        pad = torch.zeros(pooled.shape[0], self.f["channels"] - 3, *pooled.shape[2:])
        latent = torch.cat([pooled, pad], dim=1)
        return latent[:, :, None] if self.f["dims"] == 3 else latent

    def decode(self, latent):
        lat = latent[:, :, 0] if latent.ndim == 5 else latent
        rgb = torch.nn.functional.interpolate(lat[:, :3], scale_factor=self.f["downscale"], mode="nearest")
        rgb = rgb.permute(0, 2, 3, 1)
        return rgb[:, None] if self.f["dims"] == 3 else rgb


class FakeComfy:
    """Stands in for comfy.sample / node_helpers / comfy.utils so the real sampling.comfy_sampling runs."""

    def __init__(self, patch_multiple: int):
        self.calls = []
        self.patch_multiple = patch_multiple
        self.schedules = []  # (steps, tokens) asked of the FLUX.2 schedule
        self.sample_mod = SimpleNamespace(fix_empty_latent_channels=lambda m, x: x,
                                          prepare_noise=lambda x, seed: torch.zeros_like(x), sample=self.sample,
                                          sample_custom=self.sample_custom)
        self.nodes_flux = SimpleNamespace(get_schedule=self.get_schedule)
        self.samplers = SimpleNamespace(sampler_object=lambda name: f"sampler:{name}")

    def get_schedule(self, steps, tokens):
        self.schedules.append((steps, tokens))
        return torch.linspace(1, 0, steps + 1)

    def sample_custom(self, model, noise, cfg, sampler, sigmas, positive, negative, latent_image, **kw):
        self.calls.append(dict(model=model, positive=positive, negative=negative, latent=latent_image,
                               sigmas=sigmas, sampler=sampler, **kw))
        return torch.full_like(latent_image, 0.3)

    def sample(self, model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw):
        assert latent_image.shape[-1] % self.patch_multiple == 0 and latent_image.shape[-2] % self.patch_multiple == 0
        self.calls.append(dict(model=model, positive=positive, negative=negative, latent=latent_image, **kw))
        for i in range(steps):
            kw["callback"](i, latent_image, latent_image, steps)
        return torch.full_like(latent_image, 0.3)

    def module(self, name):
        return {"comfy.sample": self.sample_mod, "node_helpers": None, "comfy_extras.nodes_flux": self.nodes_flux,
                "comfy.samplers": self.samplers, "comfy.utils": SimpleNamespace(PROGRESS_BAR_ENABLED=False)}.get(name)


def run_node(monkeypatch, kind, positive, negative, identity=None, concat_keys=(), target=256, scheduler="simple",
             denoise=1.0):
    comfy = FakeComfy(FAMILIES[kind]["patch"])
    monkeypatch.setattr(adapter, "comfy_module", comfy.module)
    monkeypatch.setattr(adapter, "sampler_callback", lambda model, steps: None)
    image, mask, faces = couple()
    model = FakeDiT(kind, identity, concat_keys)
    out = node_mod.I2PFaceInpaint().inpaint(
        model, positive, negative, FakeVAE(kind), torch.from_numpy(image[None] / 255.0).float(),
        torch.from_numpy(mask[None]), faces, seed=1, steps=2, cfg=1.0, sampler_name="euler", scheduler=scheduler,
        denoise=denoise, target_size=target, context=2.0, blend=8, batch_count=1)
    img, _preview, text = out["result"]
    result = np.clip(np.rint(img[0].numpy() * 255), 0, 255).astype(np.uint8)
    jobs, _ = fi.plan_jobs([image], [mask], faces, fi.InpaintSettings(target_size=target, blend=8, multiple=16))
    zone = np.zeros(mask.shape, bool)
    for job in jobs[0]:
        zone |= job.alpha > 0
    return comfy, model, image, mask, result, zone, text


def cond(refs: int):
    extra = {"reference_latents": [torch.randn(1, 4, 2, 2) for _ in range(refs)]} if refs else {}
    return [[torch.zeros(1, 3, 8), {"pooled_output": torch.zeros(1, 8), **extra}]]


def test_family_from_comfyui_model_objects():
    flux2 = mf.of_model(FakeDiT("flux2"))
    qwen = mf.of_model(FakeDiT("qwen_image"))
    assert (flux2.name, flux2.latent_channels, flux2.multiple, flux2.unet, flux2.reference_latents) == \
        ("FLUX.2", 128, 16, False, True)
    assert (qwen.name, qwen.latent_channels, qwen.multiple, qwen.unet) == ("Qwen-Image", 16, 16, False)
    sdxl = mf.from_traits({"diffusion_class": "UNetModel", "config_class": "SDXL", "latent_channels": 4,
                            "downscale": 8, "patch_size": 1, "concat_keys": ("mask", "masked_image")})
    assert (sdxl.name, sdxl.multiple, sdxl.unet, sdxl.inpaint_channels) == ("SDXL", 8, True, True)
    # 9-channel concat keys on a DiT do not make it an SDXL inpainting UNet
    assert not mf.of_model(FakeDiT("flux2", concat_keys=("mask", "masked_image"))).inpaint_channels


@pytest.mark.parametrize("kind", ["flux2", "qwen_image"])
def test_edit_model_gets_the_crop_as_last_reference_and_background_is_bit_exact(monkeypatch, kind):
    positive, negative = cond(1), cond(0)
    comfy, _model, image, mask, result, zone, text = run_node(monkeypatch, kind, positive, negative)
    assert np.array_equal(result[~zone], image[~zone])  # 0 px changed outside the blend zone
    assert np.abs(result[mask >= 0.5].astype(int) - round(0.3 * 255)).max() <= 1  # the sample landed there
    assert len(comfy.calls) == 2  # two faces
    for call in comfy.calls:
        refs = call["positive"][0][1]["reference_latents"]
        assert len(refs) == 2 and refs[0] is positive[0][1]["reference_latents"][0]  # user's ref keeps index 0
        assert refs[1].shape == call["latent"].shape  # the crop's own latent is the edit target
        assert "reference_latents" not in call["negative"][0][1]  # no references there: left as wired
        assert "concat_latent_image" not in call["positive"][0][1]
        assert call["noise_mask"] is not None
        assert call["latent"].shape[1] == FAMILIES[kind]["channels"]
        assert call["latent"].ndim == 4 + (FAMILIES[kind]["dims"] == 3)
    assert len(positive[0][1]["reference_latents"]) == 1  # the user's conditioning is not mutated
    name = mf.DISPLAY_NAMES[kind]
    assert f"{name} ({FAMILIES[kind]['channels']}-channel latent, sizes in multiples of 16 px)" in text
    assert "reference latent 2 (the edit target)" in text and "9-channel inpaint conditioning" in text


@pytest.mark.parametrize("kind", ["flux2", "qwen_image"])
def test_sampling_sizes_are_multiples_of_sixteen(monkeypatch, kind):
    # target 200: SDXL's multiple of 8 would sample at 200 px, a multiple of 16 gives 192
    comfy, _model, image, _mask, result, zone, text = run_node(monkeypatch, kind, cond(0), cond(0), target=200)
    d = FAMILIES[kind]["downscale"]
    for call in comfy.calls:
        h, w = call["latent"].shape[-2] * d, call["latent"].shape[-1] * d
        assert (h, w) == (192, 192)
    assert np.array_equal(result[~zone], image[~zone])
    assert "no reference latents in the conditioning" in text
    assert all("reference_latents" not in c["positive"][0][1] for c in comfy.calls)


def test_identity_patch_is_stripped_for_a_dit_and_the_note_says_so(monkeypatch):
    identity = {"mode": "faceid_plus_v2", "weight": 1.0, "start_at": 0.0, "stop_at": 1.0, "masked": True}
    comfy, model, image, _mask, result, zone, text = run_node(monkeypatch, "qwen_image", cond(2), cond(2),
                                                              identity=identity)
    for call in comfy.calls:
        options = call["model"].model_options["transformer_options"]
        assert "i2p_identity" not in options and "i2p_identity_mask" not in options
        assert options["patches_replace"]["attn2"] == {}
        assert len(call["negative"][0][1]["reference_latents"]) == 3  # refs in negative get the crop too
    assert model.model_options["transformer_options"]["i2p_identity"] is identity  # the graph's MODEL untouched
    assert "identity MODEL patch skipped" in text and "faceid" not in text
    assert np.array_equal(result[~zone], image[~zone])


def test_sdxl_keeps_multiples_of_eight_and_no_reference_crop():
    plain = mf.from_traits({})
    assert plain.unet and plain.multiple == 8 and not plain.reference_latents
    region = pack_module("core.inpaint.crop").plan_crop((100, 100, 150, 170), (400, 600), 70, 2.0, 8, 250)
    assert region.sample_w % 8 == 0 and region.sample_h % 8 == 0
    region16 = pack_module("core.inpaint.crop").plan_crop((100, 100, 150, 170), (400, 600), 70, 2.0, 8, 250,
                                                          multiple=16)
    assert region16.sample_w % 16 == 0 and region16.sample_h % 16 == 0


def test_edit_model_workflow_feeds_the_face_photo_as_reference_one():
    """The shipped edit_model_portrait graph (API file): FLUX.2 klein loaders, the face photo encoded
    and set as the first reference latent, klein's distilled settings, then swap / restore / score."""
    import json

    from packload import PACK_ROOT

    prompt = json.loads((PACK_ROOT / "workflows" / "api" / "edit_model_portrait.json").read_text(encoding="utf-8"))
    by_type = {}
    for nid, node in prompt.items():
        by_type.setdefault(node["class_type"], []).append((nid, node))
    (inp_id, inp), = by_type["I2PFaceInpaint"]
    (ref_id, ref), = by_type["ReferenceLatent"]
    (enc_id, enc), = by_type["VAEEncode"]
    (unet_id, unet), = by_type["UNETLoader"]
    (clip_id, clip), = by_type["CLIPLoader"]
    face_loader = [nid for nid, n in by_type["LoadImage"] if n["inputs"]["image"] == "face.png"]
    assert inp["inputs"]["positive"][0] == ref_id and ref["inputs"]["latent"][0] == enc_id
    src, slot = enc["inputs"]["pixels"]
    if prompt[src]["class_type"] == "I2PLicenseCheck":  # the photos pass through the licence check first
        src = prompt[src]["inputs"][("images", "images_2", "images_3")[slot]][0]
    assert src in face_loader
    assert inp["inputs"]["model"][0] == unet_id and unet["inputs"]["unet_name"] == "flux-2-klein-4b.safetensors"
    assert clip["inputs"]["type"] == "flux2"
    assert (inp["inputs"]["steps"], inp["inputs"]["cfg"], inp["inputs"]["denoise"]) == (4, 1.0, 1.0)
    assert "I2PApplyIdentity" not in by_type and "CheckpointLoaderSimple" not in by_type
    for stage in ("I2PFaceSwap", "I2PFaceRestore", "I2PIdentityScore", "SaveImage"):
        assert stage in by_type


def test_flux2_scheduler_gets_each_crops_token_count_and_a_partial_schedule_for_denoise(monkeypatch):
    """'flux2' asks ComfyUI's FLUX.2 schedule for the crop's own w*h/16^2 tokens and, at denoise 0.5,
    takes the last steps+1 sigmas of a schedule twice as long (what KSampler does with a named one)."""
    comfy, _model, image, _mask, result, zone, text = run_node(monkeypatch, "flux2", cond(1), cond(0),
                                                               scheduler="flux2", denoise=0.5)
    assert comfy.calls and all(call["sampler"] == "sampler:euler" for call in comfy.calls)
    for call, (steps, tokens) in zip(comfy.calls, comfy.schedules):
        assert tokens == call["latent"].shape[-1] * call["latent"].shape[-2]
        assert steps == 4  # 2 steps at denoise 0.5
        assert torch.equal(call["sigmas"], torch.linspace(1, 0, 5)[-3:])
    assert len(comfy.schedules) == len(comfy.calls) == 2  # one per face
    assert np.array_equal(result[~zone], image[~zone])
    assert "scheduler flux2" in text


def test_flux2_scheduler_on_another_model_names_the_input(monkeypatch):
    errors = pack_module("core.errors")
    with pytest.raises(errors.I2PError) as err:
        run_node(monkeypatch, "qwen_image", cond(1), cond(0), scheduler="flux2")
    assert "scheduler" in str(err.value) and "Qwen-Image" in str(err.value) and "'simple'" in str(err.value)


def test_tail_sigmas_matches_ksampler_denoise_rule():
    schedule = lambda n: torch.arange(n + 1, 0, -1).float()  # noqa: E731
    assert sampling.tail_sigmas(schedule, 4, 1.0).tolist() == [5, 4, 3, 2, 1]
    assert sampling.tail_sigmas(schedule, 4, 0.5).tolist() == [5, 4, 3, 2, 1]  # last 5 of 9
    assert len(sampling.tail_sigmas(schedule, 3, 0.3)) == 4
    assert sampling.FLUX2_SCHEDULER in sampling.scheduler_names()


def test_qwen_edit_workflow_encodes_the_face_photo_as_picture_one():
    """The shipped qwen_edit_portrait graph (API file): Qwen-Image-Edit-2511 loaders, the face photo as
    image1 of both TextEncodeQwenImageEditPlus nodes (with the VAE: reference latent 1; the negative is the
    empty prompt with the same picture), ComfyUI's 2511 template settings, then swap / restore / score."""
    import json

    from packload import PACK_ROOT

    prompt = json.loads((PACK_ROOT / "workflows" / "api" / "qwen_edit_portrait.json").read_text(encoding="utf-8"))
    by_type = {}
    for nid, node in prompt.items():
        by_type.setdefault(node["class_type"], []).append((nid, node))
    (_, inp), = by_type["I2PFaceInpaint"]
    (unet_id, unet), = by_type["UNETLoader"]
    (clip_id, clip), = by_type["CLIPLoader"]
    (vae_id, vae), = by_type["VAELoader"]
    (shift_id, shift), = by_type["ModelSamplingAuraFlow"]
    (norm_id, norm), = by_type["CFGNorm"]
    encoders = dict(by_type["TextEncodeQwenImageEditPlus"])
    face_loader = [nid for nid, n in by_type["LoadImage"] if n["inputs"]["image"] == "face.png"]
    pos, neg = encoders[inp["inputs"]["positive"][0]], encoders[inp["inputs"]["negative"][0]]
    assert "Picture 1" in pos["inputs"]["prompt"] and neg["inputs"]["prompt"] == ""
    for enc in (pos, neg):
        src, slot = enc["inputs"]["image1"]
        if prompt[src]["class_type"] == "I2PLicenseCheck":  # the photos pass through the licence check first
            src = prompt[src]["inputs"][("images", "images_2", "images_3")[slot]][0]
        assert src in face_loader and "image2" not in enc["inputs"]
        assert enc["inputs"]["vae"][0] == vae_id and enc["inputs"]["clip"][0] == clip_id
    assert inp["inputs"]["vae"][0] == vae_id and vae["inputs"]["vae_name"] == "qwen_image_vae.safetensors"
    assert inp["inputs"]["model"][0] == norm_id and norm["inputs"]["model"][0] == shift_id
    assert shift["inputs"]["model"][0] == unet_id and shift["inputs"]["shift"] == 3.1
    assert norm["inputs"]["strength"] == 1.0
    assert unet["inputs"]["unet_name"] == "qwen_image_edit_2511_bf16.safetensors"
    assert clip["inputs"] == {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image",
                              "device": "default"}
    assert (inp["inputs"]["steps"], inp["inputs"]["cfg"], inp["inputs"]["denoise"]) == (20, 4.0, 1.0)
    assert (inp["inputs"]["sampler_name"], inp["inputs"]["scheduler"]) == ("euler", "simple")
    assert "I2PApplyIdentity" not in by_type and "CheckpointLoaderSimple" not in by_type
    for stage in ("I2PFaceSwap", "I2PFaceRestore", "I2PIdentityScore", "SaveImage"):
        assert stage in by_type
