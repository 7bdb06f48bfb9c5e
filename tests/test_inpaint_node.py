"""The node classes: widgets, outputs, text, the identity report, and the error before sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from packload import load_pack, pack_module
from test_inpaint_flow import FakeBackend, couple, face_at

fi = pack_module("core.inpaint.flow")
ft = pack_module("core.faces.types")
sampling = pack_module("core.inpaint.sampling")
contract = pack_module("core.identity.contract")
node_mod = pack_module("nodes.face_inpaint")
errors = pack_module("core.errors")


class FakeModel:
    def __init__(self, identity=None, concat_keys=()):
        self.model_options = {"transformer_options": {"i2p_identity": identity} if identity else {}}
        self.model = type("Inner", (), {"concat_keys": concat_keys})()

    def clone(self):
        twin = FakeModel()
        twin.model = self.model
        twin.model_options = {**self.model_options,
                              "transformer_options": dict(self.model_options["transformer_options"])}
        return twin


def widgets(**over):
    w = dict(seed=7, steps=3, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=0.5, target_size=256,
             context=2.0, blend=8, batch_count=2)
    w.update(over)
    return w


def test_nodes_are_registered():
    pack = load_pack()
    assert pack.NODE_CLASS_MAPPINGS["I2PFaceInpaint"] is node_mod.I2PFaceInpaint
    assert pack.NODE_CLASS_MAPPINGS["I2PFacePrePaste"] is node_mod.I2PFacePrePaste
    spec = node_mod.I2PFaceInpaint.INPUT_TYPES()["required"]
    assert spec["target_size"][1]["default"] == 1024 and "euler" in spec["sampler_name"][0]


def test_inpaint_node_runs_with_injected_sampler(monkeypatch):
    image, mask, faces = couple()
    backend = FakeBackend(steps=3)
    seen = {}

    def fake_comfy_sampling(model, vae, positive, negative, **kw):
        seen.update(kw)
        fns = backend.fns()
        fns.inpaint_model = sampling.is_inpaint_model(model)
        return fns

    monkeypatch.setattr(sampling, "comfy_sampling", fake_comfy_sampling)
    model = FakeModel({"mode": "faceid_plus_v2", "weight": 1.0, "start_at": 0.0, "stop_at": 0.7},
                      concat_keys=("mask", "masked_image"))
    out = node_mod.I2PFaceInpaint().inpaint(model, [], [], object(), torch.from_numpy(image[None] / 255.0).float(),
                                           torch.from_numpy(mask[None]), faces, **widgets())
    img, preview, text = out["result"]
    assert img.shape == (2, 360, 640, 3) and img.dtype == torch.float32
    assert preview.shape == (2, 384, 768, 3)
    assert seen == {"steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5}
    assert "steps 1..2 of 3" in text and "inpainting checkpoint" in text
    assert "concat_latent_image" in backend.calls[0][2][0][1]
    back = np.clip(np.rint(img[0].numpy() * 255), 0, 255).astype(np.uint8)
    far = np.ones(mask.shape, bool)
    far[:140, :130] = False
    far[160:, 410:] = False
    assert np.array_equal(back[far], image[far])
    assert out["ui"]["text"] == [text]


def test_inpaint_node_rejects_bad_mask_before_building_the_sampler(monkeypatch):
    image, mask, faces = couple()

    def must_not_run(*a, **k):
        raise AssertionError("sampler built despite bad input")

    monkeypatch.setattr(sampling, "comfy_sampling", must_not_run)
    with pytest.raises(errors.I2PError, match="input 'mask'"):
        node_mod.I2PFaceInpaint().inpaint(FakeModel(), [], [], object(), torch.from_numpy(image[None] / 255.0).float(),
                                         torch.ones(1, 360, 640), faces, **widgets())


def test_plain_model_is_not_an_inpainting_model_and_outside_comfyui_sampler_is_refused():
    assert not sampling.is_inpaint_model(FakeModel())
    assert sampling.is_inpaint_model(FakeModel(concat_keys=("mask", "masked_image")))
    assert sampling.identity_info(FakeModel({"mode": "x"})) == {"mode": "x"}
    with pytest.raises(errors.I2PError, match="inside ComfyUI"):
        sampling.comfy_sampling(FakeModel(), None, [], [], steps=1, cfg=1.0, sampler_name="euler",
                                scheduler="normal", denoise=1.0)


def test_prepaste_node():
    target = np.full((300, 400, 3), 90, np.uint8)
    source = np.full((200, 200, 3), 210, np.uint8)
    mask = np.zeros((1, 300, 400), np.float32)
    mask[0, 100:200, 150:250] = 1
    faces = ft.Faces([ft.FaceSet((300, 400), [face_at(200, 150, 100)])])
    src_faces = ft.Faces([ft.FaceSet((200, 200), [face_at(100, 100, 120)])])
    out = node_mod.I2PFacePrePaste().paste(torch.from_numpy(target[None] / 255.0).float(), torch.from_numpy(mask),
                                           faces, torch.from_numpy(source[None] / 255.0).float(), src_faces, 0.0, 4)
    img, text = out["result"]
    assert img.shape == (1, 300, 400, 3)
    arr = np.clip(np.rint(img[0].numpy() * 255), 0, 255).astype(np.uint8)
    assert arr[150, 200, 0] == 210 and np.array_equal(arr[mask[0] == 0], target[mask[0] == 0])
    assert "landmark fit error" in text


def test_identity_mask_follows_the_crop_on_a_clone():
    """A whole-photo identity mask would land in the wrong place on a crop: sampling hands the patch
    the crop's own mask, on a clone, and only when the identity was applied with a mask."""
    crop_mask = torch.zeros(1, 1, 16, 24)
    crop_mask[..., 4:12, 6:18] = 1.0
    masked = FakeModel({"mode": "faceid_plus_v2", "masked": True})
    clone = contract.with_crop_mask(masked, crop_mask)
    assert clone is not masked
    got = clone.model_options["transformer_options"]["i2p_identity_mask"]
    assert got.shape == (1, 16, 24) and torch.equal(got[0], crop_mask[0, 0])
    assert "i2p_identity_mask" not in masked.model_options["transformer_options"]
    unmasked = FakeModel({"mode": "faceid_plus_v2", "masked": False})
    assert contract.with_crop_mask(unmasked, crop_mask) is unmasked
    plain = FakeModel()
    assert contract.with_crop_mask(plain, crop_mask) is plain
