"""``if_no_face: pass through`` means pass-through: an image in which I2P Detect Faces found no face
flows through swap, restore, inpaint and score unchanged, with a note in each node's info text, for a
single image as for a batch (docs/face-analysis.md). The FACES come from the real detect node."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from packload import pack_module
from test_inpaint_flow import FakeBackend, disc

images = pack_module("core.images")


@pytest.fixture(scope="module")
def analyzer(test_models):
    test_models.group("buffalo_l")
    return pack_module("core.faces.analysis").load_analyzer("buffalo_l", "CPU")


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    face = np.ascontiguousarray(data.astronaut())
    return face, np.zeros_like(face)  # the test detector finds no face in a black image


def detect(analyzer, imgs, if_no_face="pass through", indices=""):
    node = pack_module("nodes.face_analysis").I2PDetectFaces()
    return node.detect(analyzer, images.from_rgb_uint8(imgs), "largest", indices, "any", 0, 0.5, 640, if_no_face)[0]


def back(tensor, i=0):
    return np.clip(np.rint(tensor[i].numpy() * 255), 0, 255).astype(np.uint8)


def test_detect_passes_the_face_less_image_and_would_error_without_the_option(analyzer, photos):
    face, black = photos
    faces = detect(analyzer, [face, black])
    assert len(faces.sets[0].faces) == 2 and faces.sets[1].faces == []
    with pytest.raises(pack_module("core.errors").I2PError, match="pass through"):
        detect(analyzer, [black], if_no_face="error")
    # an index list does not turn a face-less image into an index error
    assert detect(analyzer, [face, black], indices="0").sets[1].faces == []
    with pytest.raises(pack_module("core.errors").I2PError, match="no face was detected") as info:
        detect(analyzer, [face, black], if_no_face="error", indices="0")
    assert info.value.input_name == "image"


SWAP_ARGS = dict(swap_model="inswapper_128.onnx", source_indices="", target_indices="", provider="CPU",
                 resolution_boost="none", colour_correction=True, mask_erode=0.05, mask_blur=0.08, seam_width=0,
                 content_safety="on", nsfw_threshold=0.8)


def test_swap_single_and_batch(analyzer, photos, test_models):
    for mid in ("inswapper_128", "nsfw-vit", "nsfw-vit-config"):
        test_models.get(mid)
    face, black = photos
    node = pack_module("nodes.face_swap").I2PFaceSwap()
    src = detect(analyzer, [face])
    # single image without a face: unchanged, no error (before: "no face was found in the target image")
    img, seam, swapped, info = node.swap(images.from_rgb_uint8([black]), detect(analyzer, [black]),
                                         images.from_rgb_uint8([face]), src, **SWAP_ARGS)["result"]
    assert np.array_equal(back(img), black) and float(seam.max()) == 0 and swapped.sets[0].faces == []
    assert "image 0: no target face (passed through by I2P Detect Faces), left unchanged" in info
    assert "passed through unchanged" in info
    # batch: the face image is swapped, the face-less one flows through
    img, seam, swapped, info = node.swap(images.from_rgb_uint8([face, black]), detect(analyzer, [face, black]),
                                         images.from_rgb_uint8([face]), src, **SWAP_ARGS)["result"]
    assert not np.array_equal(back(img, 0), face) and np.array_equal(back(img, 1), black)
    assert len(swapped.sets[0].faces) == 2 and swapped.sets[1].faces == []
    assert "image 1: no target face" in info and "image 0: source face 0 -> target face 0" in info
    # a source photo without a face (passed through on the source side): the targets stay as they are
    img, _, _, info = node.swap(images.from_rgb_uint8([face]), src, images.from_rgb_uint8([black]),
                                detect(analyzer, [black]), **SWAP_ARGS)["result"]
    assert np.array_equal(back(img), face) and "no source face" in info


def test_restore_single_and_batch(analyzer, photos, test_models):
    test_models.get("gfpgan-v1.4")
    face, black = photos
    node = pack_module("nodes.face_restore").I2PFaceRestore()
    img, mask, info = node.restore(images.from_rgb_uint8([black]), detect(analyzer, [black]), "GFPGANv1.4.pth",
                                   0.8, "all selected faces")["result"]
    assert np.array_equal(back(img), black) and float(mask.max()) == 0
    assert "image 0: no face (passed through by I2P Detect Faces), left unchanged" in info
    img, mask, info = node.restore(images.from_rgb_uint8([face, black]), detect(analyzer, [face, black], indices="0"),
                                   "GFPGANv1.4.pth", 0.8, "all selected faces")["result"]
    assert not np.array_equal(back(img, 0), face) and np.array_equal(back(img, 1), black)
    assert float(mask[0].max()) > 0 and float(mask[1].max()) == 0
    assert "image 1: no face (passed through" in info and "image 0: 1 face(s) restored" in info


def test_inpaint_single_and_batch(analyzer, photos, monkeypatch):
    face, black = photos
    node_mod = pack_module("nodes.face_inpaint")
    sampling = pack_module("core.inpaint.sampling")
    backend = FakeBackend(steps=2)
    monkeypatch.setattr(sampling, "comfy_sampling", lambda *a, **k: backend.fns())

    class Model:
        model_options: dict = {"transformer_options": {}}

    h, w = face.shape[:2]
    # a mask that is NOT empty on the face-less image too: pass-through comes from FACES, not the mask
    mask = torch.from_numpy(np.stack([disc(h, w, 223, 120, 60)] * 2)).float()
    widgets = dict(seed=1, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=0.5,
                   target_size=256, context=2.0, blend=8, batch_count=1)
    out, _, info = node_mod.I2PFaceInpaint().inpaint(Model(), [], [], object(), images.from_rgb_uint8([black]),
                                                     mask[:1], detect(analyzer, [black]), **widgets)["result"]
    assert np.array_equal(back(out), black) and backend.calls == []
    assert "image 0: no face (passed through by I2P Detect Faces), image returned unchanged." in info
    out, _, info = node_mod.I2PFaceInpaint().inpaint(Model(), [], [], object(), images.from_rgb_uint8([face, black]),
                                                     mask, detect(analyzer, [face, black]), **widgets)["result"]
    assert len(backend.calls) >= 1 and not np.array_equal(back(out, 0), face)
    assert np.array_equal(back(out, 1), black) and "image 1: no face (passed through" in info


def test_score_single_and_batch(analyzer, photos):
    face, black = photos
    node = pack_module("nodes.identity_score").I2PIdentityScore()
    src = detect(analyzer, [face])
    value, info = node.score(analyzer, images.from_rgb_uint8([black]), detect(analyzer, [black]), src, "", "",
                             "mean")["result"]
    assert value == 0.0 and "image 0: no face to score (passed through" in info and "not scored" in info
    value, info = node.score(analyzer, images.from_rgb_uint8([face, black]), detect(analyzer, [face, black]), src,
                             "0,1", "0,1", "mean")["result"]
    assert value == pytest.approx(1.0, abs=1e-4)  # image 0 scored against itself; image 1 passed through
    assert "image 1: no face to score" in info and "target face 1 vs source face 1" in info
