"""Content-safety gate: threshold, refusal message, missing model, explicit switch-off."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from packload import pack_module

gate = pack_module("core.post.nsfw_gate")
errors = pack_module("core.errors")


def _models_with_bias(test_models, tmp_path, bias: tuple[float, float]):
    """A copy of the tiny test classifier whose head ignores the image and always outputs ``bias``:
    a classifier that calls everything explicit (or nothing), to test the gate's decision path."""
    import torch
    from safetensors.torch import load_file, save_file

    src = test_models.get("nsfw-vit").parent
    test_models.get("nsfw-vit-config")
    dst = tmp_path / "models" / "nsfw_detector" / "vit-base-nsfw-detector"
    dst.mkdir(parents=True)
    shutil.copy(src / "config.json", dst / "config.json")
    sd = load_file(str(src / "model.safetensors"))
    sd["classifier.weight"] = torch.zeros_like(sd["classifier.weight"])
    sd["classifier.bias"] = torch.tensor(bias, dtype=sd["classifier.bias"].dtype)
    save_file(sd, str(dst / "model.safetensors"))
    return tmp_path / "models"


def _img(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)


def test_labels_and_preprocessing_come_from_the_local_folder(test_models):
    test_models.get("nsfw-vit"), test_models.get("nsfw-vit-config")
    folder = gate.find_model_dir()
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["id2label"] == {"0": "normal", "1": "nsfw"}
    clf = gate.load_classifier("I2P Face Swap")
    assert clf.nsfw_index == 1 and clf.image_size == cfg["image_size"]
    p = clf.probability(_img())
    assert 0.0 <= p <= 1.0
    report = gate.check({"image": [_img(1), _img(2)]}, "I2P Face Swap", threshold=1.0)
    assert len(report.probabilities["image"]) == 2 and "P(nsfw)" in report.text()


def test_explicit_input_is_refused_with_a_clear_message(test_models, tmp_path, monkeypatch):
    monkeypatch.setenv("I2P_MODELS_DIR", str(_models_with_bias(test_models, tmp_path, (-4.0, 4.0))))
    with pytest.raises(errors.I2PError) as info:
        gate.check({"source_image": [_img()], "image": [_img(1)]}, "I2P Face Swap")
    err = info.value
    assert err.input_name == "source_image" and "explicit" in str(err) and "threshold 0.80" in str(err)


def test_normal_input_passes_the_default_threshold(test_models, tmp_path, monkeypatch):
    monkeypatch.setenv("I2P_MODELS_DIR", str(_models_with_bias(test_models, tmp_path, (4.0, -4.0))))
    report = gate.check({"image": [_img()]}, "I2P Face Swap")
    assert report.probabilities["image"][0] < 0.01


def test_missing_model_stops_the_swap_and_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    with pytest.raises(errors.I2PError) as info:
        gate.check({"image": [_img()]}, "I2P Face Swap")
    msg = str(info.value)
    assert "models download nsfw-vit nsfw-vit-config" in msg and "content_safety" in msg


def test_swap_node_gate_on_by_default_and_off_only_explicitly(test_models, tmp_path, monkeypatch):
    node_mod = pack_module("nodes.face_swap")
    spec = node_mod.I2PFaceSwap.INPUT_TYPES()["required"]
    assert spec["content_safety"][1]["default"] == "on"
    assert spec["nsfw_threshold"][1]["default"] == pytest.approx(gate.DEFAULT_THRESHOLD)
    # no classifier installed: 'on' refuses to run, 'off' runs and says so
    ft = pack_module("core.faces.types")
    images = pack_module("core.images")
    test_models.get("inswapper_128")
    empty_models = tmp_path / "m"
    (empty_models / "insightface").mkdir(parents=True)
    shutil.copy(test_models.get("inswapper_128"), empty_models / "insightface" / "inswapper_128.onnx")
    monkeypatch.setenv("I2P_MODELS_DIR", str(empty_models))
    img = np.full((200, 200, 3), 128, np.uint8)
    kps = np.array([[80, 90], [120, 90], [100, 110], [85, 130], [115, 130]], np.float32)
    face = ft.Face(bbox=np.array([60, 60, 140, 150], np.float32), kps=kps, det_score=0.9,
                   embedding=np.ones(512, np.float32) / np.sqrt(512))
    faces = ft.Faces(sets=[ft.FaceSet(image_size=(200, 200), faces=[face])])
    args = dict(swap_model="inswapper_128.onnx", source_indices="", target_indices="", provider="CPU",
                resolution_boost="none", colour_correction=True, mask_erode=0.05, mask_blur=0.08, seam_width=0,
                nsfw_threshold=0.8)
    t = images.from_rgb_uint8([img])
    with pytest.raises(errors.I2PError, match="content-safety model is missing"):
        node_mod.I2PFaceSwap().swap(t, faces, t, faces, content_safety="on", **args)
    out = node_mod.I2PFaceSwap().swap(t, faces, t, faces, content_safety="off", **args)["result"]
    assert "content safety: OFF" in out[3]
