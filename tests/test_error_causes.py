"""Errors name the real cause: node, the input that is wrong, and a fix; never a library's raw text.

Each damaged-model case starts from a valid file in the real format (tests/model_factory), truncates or
overwrites it, and goes through the pack's real loader for that format: ONNX graph, InsightFace pack
folder, .safetensors, torch zip (.pth / .bin)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from packload import pack_module

errors = pack_module("core.errors")
model_errors = pack_module("core.model_errors")
manifest = pack_module("models.manifest")

#: what a user must never see: library internals and exception class names of the loaders
RAW = ("ONNXRuntimeError", "INVALID_PROTOBUF", "Protobuf", "PytorchStreamReader", "miniz", "SafetensorError",
       "deserializing", "UnpicklingError", "Traceback", "central directory", "HeaderTooLarge")


def damage(src: Path, dest: Path, how: str) -> Path:
    """A copy of ``src`` at ``dest``: ``copy`` (intact), ``truncated`` (first 40 %), ``garbage`` (random bytes of the same
    size; files over 8 MB keep their size but get 8 MB of noise at the start) or ``empty``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if how == "copy":
        shutil.copytree(src, dest) if src.is_dir() else shutil.copy(src, dest)
        return dest
    data = src.read_bytes()
    if how == "truncated":
        dest.write_bytes(data[: int(len(data) * 0.4)])
    elif how == "garbage":
        noise = np.random.default_rng(0).integers(0, 256, min(len(data), 8 << 20), np.uint8).tobytes()
        dest.write_bytes(noise + data[len(noise):])
    elif how == "empty":
        dest.write_bytes(b"")
    else:
        raise ValueError(how)
    return dest


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """An empty models tree the loaders search ($I2P_MODELS_DIR, as outside ComfyUI)."""
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("I2P_MODELS_DIR", str(root))
    return root


def place(test_models, tree: Path, model_id: str, how: str) -> Path:
    entry = manifest.by_id(model_id)
    return damage(test_models.get(model_id), tree / entry.folder / entry.filename, how)


def assert_cause(exc: BaseException, node: str, input_name: str, shown: str, model_id: str | None, tmp: Path,
                 state: str = "is damaged or incomplete") -> None:
    msg = str(exc)
    assert isinstance(exc, model_errors.ModelFileUnreadable), msg
    assert msg.startswith(f"[{node}] input '{input_name}': {shown} {state}"), msg
    if model_id:
        assert "delete it" in msg and f"python -m ip_to_portrait models download {model_id}." in msg, msg
    assert "Fix:" in msg and str(tmp) not in msg, msg
    assert not [w for w in RAW if w in msg], msg


# ------------------------------------------------------------------------------------- ONNX graphs
@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_damaged_inswapper_onnx(test_models, tree, tmp_path, how):
    nodes = pack_module("nodes.face_swap")
    place(test_models, tree, "inswapper_128", how)
    with pytest.raises(errors.I2PError) as info:
        nodes.load_swap_model("inswapper_128.onnx", "CPU")
    assert_cause(info.value, "I2P Face Swap", "swap_model", "models/insightface/inswapper_128.onnx",
                 "inswapper_128", tmp_path, "is empty (0 bytes)" if how == "empty" else "is damaged or incomplete")


@pytest.mark.parametrize("how,bad", [("truncated", "w600k_r50.onnx"), ("garbage", "det_10g.onnx")])
def test_damaged_file_in_an_insightface_pack_folder_is_named(test_models, tree, tmp_path, how, bad):
    fa = pack_module("core.faces.analysis")
    good = test_models.group("buffalo_l")
    pack = damage(good, tree / "insightface" / "models" / "buffalo_l", "copy")
    damage(good / bad, pack / bad, how)
    with pytest.raises(errors.I2PError) as info:
        fa.FaceAnalyzer("buffalo_l", "CPU")
    assert_cause(info.value, "I2P Face Analyzer Loader", "pack", f"models/insightface/models/buffalo_l/{bad}",
                 f"buffalo_l-{Path(bad).stem}", tmp_path)


# ------------------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_ipadapter_safetensors(test_models, tree, tmp_path, how):
    ipa = pack_module("models.ipadapter")
    path = place(test_models, tree, "ip-adapter-sdxl-vit-h", how)
    with pytest.raises(errors.I2PError) as info:
        ipa.load_ipadapter(path)
    assert_cause(info.value, "I2P Identity Adapter Loader", "ipadapter_file",
                 "models/ipadapter/ip-adapter_sdxl_vit-h.safetensors", "ip-adapter-sdxl-vit-h", tmp_path)


def test_damaged_content_safety_model(test_models, tree, tmp_path):
    gate = pack_module("core.post.nsfw_gate")
    place(test_models, tree, "nsfw-vit-config", "garbage")  # config.json: not JSON any more
    place(test_models, tree, "nsfw-vit", "truncated")
    with pytest.raises(errors.I2PError) as info:
        gate.load_classifier("I2P Face Swap")
    assert_cause(info.value, "I2P Face Swap", "content_safety", "models/nsfw_detector/vit-base-nsfw-detector",
                 "nsfw-vit nsfw-vit-config", tmp_path)
    shutil.copy(test_models.get("nsfw-vit-config"), tree / "nsfw_detector" / "vit-base-nsfw-detector" / "config.json")
    with pytest.raises(errors.I2PError) as info:  # only the weights damaged
        gate.load_classifier("I2P Face Swap")
    assert_cause(info.value, "I2P Face Swap", "content_safety", "models/nsfw_detector/vit-base-nsfw-detector",
                 "nsfw-vit nsfw-vit-config", tmp_path)


def test_damaged_identity_file(tree, tmp_path):
    enc = pack_module("core.identity.encoding")
    nodes = pack_module("nodes.identity")
    e = torch.ones(1, 512) / 512 ** 0.5
    good = enc.save_identity(enc.Identity(embedding=e), tmp_path / "good.safetensors")
    damage(good, tree / "identities" / "anna.safetensors", "truncated")
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PLoadIdentity().load("anna.safetensors")
    assert_cause(info.value, "I2P Load Face Identity", "identity_file", "models/identities/anna.safetensors",
                 None, tmp_path)


# --------------------------------------------------------------------------------- torch zip (.pth/.bin)
@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_ipadapter_bin(test_models, tree, tmp_path, how):
    ipa = pack_module("models.ipadapter")
    path = place(test_models, tree, "faceid-plusv2-sdxl", how)
    with pytest.raises(errors.I2PError) as info:
        ipa.load_ipadapter(path)
    assert_cause(info.value, "I2P Identity Adapter Loader", "ipadapter_file",
                 "models/ipadapter/ip-adapter-faceid-plusv2_sdxl.bin", "faceid-plusv2-sdxl", tmp_path)


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_ghost_pth(test_models, tree, tmp_path, how):
    nodes = pack_module("nodes.face_swap")
    place(test_models, tree, "ghost-unet-2blocks", how)
    place(test_models, tree, "ghost-arcface", "truncated" if how == "garbage" else "copy")
    with pytest.raises(errors.I2PError) as info:
        nodes.load_swap_model("ghost/G_unet_2blocks.pth", "CPU")
    assert_cause(info.value, "I2P Face Swap", "swap_model", "models/ghost/G_unet_2blocks.pth",
                 "ghost-unet-2blocks", tmp_path)


def test_damaged_bisenet_pth(test_models, tree, tmp_path):
    parsing = pack_module("core.faces.parsing")
    path = place(test_models, tree, "bisenet-face-parsing", "truncated")
    with pytest.raises(errors.I2PError) as info:
        parsing.load_parser(path)
    assert_cause(info.value, "I2P Face Parsing Mask", "parsing_model", "models/facedetection/parsing_bisenet.pth",
                 "bisenet-face-parsing", tmp_path)


def test_damaged_gfpgan_pth_names_the_input_that_picked_it(test_models, tree, tmp_path):
    """Through the restore node's loader and the swap node's resolution_boost: each names its own input."""
    restore = pack_module("core.post.restore")
    path = place(test_models, tree, "gfpgan-v1.4", "truncated")
    with pytest.raises(errors.I2PError) as info:
        restore.load_restorer(path, "I2P Face Restore")
    assert_cause(info.value, "I2P Face Restore", "restore_model", "models/facerestore_models/GFPGANv1.4.pth",
                 "gfpgan-v1.4", tmp_path)
    with pytest.raises(errors.I2PError) as info:
        restore.load_restorer(path, "I2P Face Swap", input_name="resolution_boost")
    assert_cause(info.value, "I2P Face Swap", "resolution_boost", "models/facerestore_models/GFPGANv1.4.pth",
                 "gfpgan-v1.4", tmp_path)


def test_a_readable_file_of_another_kind_is_not_called_damaged(test_models, tree):
    """A valid torch file that is not a Ghost generator keeps its own message (wrong file, not damaged)."""
    nodes = pack_module("nodes.face_swap")
    entry = manifest.by_id("ghost-unet-2blocks")
    dest = tree / entry.folder / entry.filename
    dest.parent.mkdir(parents=True)
    torch.save({"weight": torch.zeros(2)}, dest)
    place(test_models, tree, "ghost-arcface", "copy")
    with pytest.raises(errors.I2PError) as info:
        nodes.load_swap_model("ghost/G_unet_2blocks.pth", "CPU")
    assert not isinstance(info.value, model_errors.ModelFileUnreadable)
    assert "is not a Ghost AEI-Net file" in str(info.value) and "models/ghost/G_unet_2blocks.pth" in str(info.value)


# ----------------------------------------------------------------------------------- faces and indices
@pytest.fixture(scope="module")
def analyzer(test_models):
    test_models.group("buffalo_l")
    return pack_module("core.faces.analysis").load_analyzer("buffalo_l", "CPU")


def detect(analyzer, image: np.ndarray, **kw):
    args = dict(order="largest", indices="", gender="any", min_size=0, threshold=0.5, det_size=640,
                if_no_face="error")
    args.update(kw)
    tensor = torch.from_numpy(image[None].astype(np.float32) / 255.0)
    return pack_module("nodes.face_analysis").I2PDetectFaces().detect(analyzer, tensor, **args)


def test_photo_without_a_face_blames_the_photo_not_indices(analyzer):
    black = np.zeros((256, 256, 3), np.uint8)
    for indices in ("", "0", "1,0"):
        with pytest.raises(errors.I2PError) as info:
            detect(analyzer, black, indices=indices)
        msg = str(info.value)
        assert msg.startswith("[I2P Detect Faces] input 'image': image 0 of the batch: no face was detected"), msg
        assert "pass through" in msg
        faces, _, text = detect(analyzer, black, indices=indices, if_no_face="pass through")
        assert faces.sets[0].faces == [] and "0 found, 0 selected" in text
    with pytest.raises(errors.I2PError) as info:  # a typo in indices is still the typo's fault
        detect(analyzer, black, indices="first")
    assert str(info.value).startswith("[I2P Detect Faces] input 'indices'")


def test_faces_filtered_away_blame_the_filter(analyzer):
    from skimage import data

    with pytest.raises(errors.I2PError) as info:
        detect(analyzer, np.ascontiguousarray(data.astronaut()), indices="0", min_size=5000)
    assert str(info.value).startswith("[I2P Detect Faces] input 'min_size'"), str(info.value)
    with pytest.raises(errors.I2PError) as info:  # faces there, index beyond them: 'indices' is right
        detect(analyzer, np.ascontiguousarray(data.astronaut()), indices="7")
    assert str(info.value).startswith("[I2P Detect Faces] input 'indices'"), str(info.value)


@pytest.mark.parametrize("src,tgt,n_src,n_tgt,blamed", [
    ("", "0,1", 1, 2, "target_indices"),  # empty sources follow the targets: two needed, one there
    ("", "2", 1, 2, "target_indices"),  # target 2 does not exist
    ("0,1", "", 2, 1, "source_indices"),  # empty targets follow the sources: two needed, one there
    ("0", "5", 1, 2, "target_indices"),
    ("3", "0", 1, 2, "source_indices"),
])
def test_bad_target_indices_blame_target_indices(src, tgt, n_src, n_tgt, blamed):
    swap = pack_module("core.post.swap")
    with pytest.raises(errors.I2PError) as info:
        swap.parse_mapping(src, tgt, n_src, n_tgt)
    assert str(info.value).startswith(f"[I2P Face Swap] input '{blamed}'"), str(info.value)


def test_a_whole_file_with_pickled_code_is_not_called_damaged(tree, tmp_path):
    """torch's weights-only loader refuses pickled objects: the file is whole, the fix is another file."""
    import argparse

    ipa = pack_module("models.ipadapter")
    path = tree / "ipadapter" / "custom.bin"
    path.parent.mkdir(parents=True)
    torch.save({"image_proj": argparse.Namespace(a=1)}, path)  # a class outside the weights-only allow list
    with pytest.raises(model_errors.ModelFileUnreadable) as info:
        ipa.load_ipadapter(path)
    msg = str(info.value)
    assert msg.startswith("[I2P Identity Adapter Loader] input 'ipadapter_file': models/ipadapter/custom.bin "
                          "holds Python objects besides tensors"), msg
    assert "damaged" not in msg and str(tmp_path) not in msg and not [w for w in RAW if w in msg]


def test_faces_of_another_batch_name_the_faces_input_not_an_index_error():
    """Restore and Score read FACES per image: a FACES value from a smaller batch or another picture
    size is the 'faces' input's fault (before: a raw IndexError, or a paste at the wrong place)."""
    ft = pack_module("core.faces.types")
    face = ft.Face(bbox=np.array([10, 10, 60, 60], np.float32), kps=np.zeros((5, 2), np.float32) + 30,
                   det_score=0.9, embedding=np.ones(512, np.float32) / 512 ** 0.5)
    two = ft.Faces([ft.FaceSet((64, 64), [face]), ft.FaceSet((64, 64), [face])])
    other_size = ft.Faces([ft.FaceSet((64, 128), [face])])
    images = torch.zeros(3, 64, 64, 3)
    restore = pack_module("nodes.face_restore").I2PFaceRestore()
    score = pack_module("nodes.identity_score").I2PIdentityScore()

    class Analyzer:
        def embed(self, image, f):
            return np.ones(512, np.float32) / 512 ** 0.5

    for faces, words in ((two, "FACES holds 2 image(s)"), (other_size, "detected on a 128x64 image")):
        with pytest.raises(errors.I2PError) as info:
            restore.restore(images, faces, "GFPGANv1.4.pth", 0.0, "all selected faces")
        assert str(info.value).startswith("[I2P Face Restore] input 'faces'") and words in str(info.value)
        with pytest.raises(errors.I2PError) as info:
            restore.restore(images, faces, "GFPGANv1.4.pth", 0.0, "only swapped faces", swapped_faces=faces)
        assert str(info.value).startswith("[I2P Face Restore] input 'swapped_faces'")
        with pytest.raises(errors.I2PError) as info:
            score.score(Analyzer(), images, faces, two, "", "", "mean")
        assert str(info.value).startswith("[I2P Identity Score] input 'faces'") and words in str(info.value)
