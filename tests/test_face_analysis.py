"""Face analysis: loading a buffalo_l pack without downloads, detection, embeddings, selection, the nodes.

The test pack's detector is the deterministic fake of tests/model_factory/insightface_models.py: face A
on the astronaut's real face, face B lower left (see its docstring for boxes, landmarks and scores).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from packload import pack_module

INSIGHTFACE_T1 = Path(__import__("insightface").__file__).parent / "data" / "images" / "t1.jpg"


@pytest.fixture(scope="module")
def fa(test_models):
    test_models.group("buffalo_l")
    return pack_module("core.faces.analysis")


@pytest.fixture(scope="module")
def analyzer(fa):
    return fa.load_analyzer("buffalo_l", "CPU")


@pytest.fixture(scope="module")
def nodes():
    return pack_module("nodes.face_analysis")


def astronaut():
    import skimage.data

    return skimage.data.astronaut()


def t1_rgb():
    import cv2

    return cv2.imread(str(INSIGHTFACE_T1))[:, :, ::-1].copy()


def as_image(*arrays):
    import torch

    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0)


def make_face(x1, y1, x2, y2, score=0.9, gender=None, index=0):
    ft = pack_module("core.faces.types")
    kps = np.array([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]], np.float32)
    return ft.Face(bbox=np.array([x1, y1, x2, y2], np.float32), kps=kps, det_score=score, gender=gender,
                   detection_index=index)


# ------------------------------------------------------------------------------------- test models
def test_insightface_routes_every_test_model_like_the_real_file(test_models):
    from insightface.model_zoo import get_model

    folder = test_models.group("buffalo_l")
    expected = {"det_10g.onnx": ("SCRFD", "detection"), "w600k_r50.onnx": ("ArcFaceONNX", "recognition"),
                "genderage.onnx": ("Attribute", "genderage"), "2d106det.onnx": ("Landmark", "landmark_2d_106"),
                "1k3d68.onnx": ("Landmark", "landmark_3d_68")}
    for name, (cls, task) in expected.items():
        model = get_model(str(folder / name), providers=["CPUExecutionProvider"])
        assert type(model).__name__ == cls and model.taskname == task, name
    rec = get_model(str(folder / "w600k_r50.onnx"), providers=["CPUExecutionProvider"])
    assert rec.input_name == "input.1" and rec.output_names == ["683"] and rec.input_size == (112, 112)


# ----------------------------------------------------------------------------------------- analyzer
def test_analyzer_reports_the_provider_each_session_got(analyzer):
    providers = analyzer.providers
    assert set(providers) == {"det_10g.onnx", "w600k_r50.onnx", "genderage.onnx", "2d106det.onnx"}
    assert set(providers.values()) == {"CPUExecutionProvider"}
    text = analyzer.describe()
    assert "det_10g.onnx: CPUExecutionProvider" in text and "buffalo_l" in text


def test_requesting_an_absent_gpu_provider_says_so(fa, test_models):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    chosen, notes = fa.resolve_providers("CUDA")
    assert chosen == ["CPUExecutionProvider"]
    assert "onnxruntime-gpu" in notes[0]
    analyzer = fa.load_analyzer("buffalo_l", "CUDA")
    assert "CUDA requested" in analyzer.describe()


def test_analyzer_is_cached(fa, analyzer):
    assert fa.load_analyzer("buffalo_l", "CPU") is analyzer


def test_missing_pack_names_folder_and_download_command(fa, tmp_path, monkeypatch):
    errors = pack_module("core.errors")
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    with pytest.raises(errors.I2PError) as info:
        fa.FaceAnalyzer("buffalo_l", "CPU")
    msg = str(info.value)
    assert "models/insightface/models/buffalo_l" in msg
    assert "python -m ip_to_portrait models download buffalo_l-det_10g" in msg
    (tmp_path / "insightface" / "buffalo_l").mkdir(parents=True)  # the common mistake: one level too high
    with pytest.raises(errors.I2PError, match="belong one level deeper"):
        fa.FaceAnalyzer("buffalo_l", "CPU")
    # a pack folder with the recognition model missing names that file
    import model_factory.insightface_models as im

    pack = tmp_path / "insightface" / "models" / "buffalo_l"
    im.build_buffalo_pack(pack, with_3d68=False)
    (pack / "w600k_r50.onnx").unlink()
    with pytest.raises(errors.I2PError, match="missing w600k_r50.onnx"):
        fa.FaceAnalyzer("buffalo_l", "CPU")


def test_astronaut_face_lands_on_her_face(analyzer):
    img = astronaut()
    faces = analyzer.detect(img)
    assert [round(f.det_score, 2) for f in faces] == [0.96, 0.90]  # detector (score) order: B, A
    a = faces[1]
    # eyes, nose tip and mouth corners measured on the photo (pixels), within 3 px
    measured = np.array([[204, 102], [247, 103.5], [223.5, 122.5], [205, 143.5], [242.5, 143.5]])
    assert np.abs(a.kps - measured).max() < 3
    for f in faces:
        assert f.embedding.shape == (512,) and abs(np.linalg.norm(f.embedding) - 1) < 1e-5
        assert f.gender in ("female", "male") and 0 < f.age < 100
        assert f.landmarks_106.shape == (106, 2)
    assert float(faces[0].embedding @ faces[1].embedding) < 0.99  # different crops, different identity
    np.testing.assert_allclose(analyzer.embed(img, a), a.embedding, atol=1e-6)


def test_detection_is_relative_to_the_image_for_any_aspect_and_size(analyzer):
    import cv2

    base = astronaut()
    for h, w in ((333, 517), (900, 300), (17, 23), (3001, 4003)):
        img = cv2.resize(base, (w, h))
        faces = analyzer.detect(img)
        assert len(faces) == 2, (h, w)
        a = max(faces, key=lambda f: f.size)
        cx, cy = a.center
        assert abs(cx / w - 0.4355) < 0.02 + 32 / w and abs(cy / h - 0.2365) < 0.02 + 32 / h, (h, w, a.bbox)


def test_group_photo_from_insightface(analyzer):
    img = t1_rgb()
    faces = analyzer.detect(img)
    assert len(faces) == 2
    assert all(0 <= f.bbox[0] < f.bbox[2] <= img.shape[1] and 0 <= f.bbox[1] < f.bbox[3] <= img.shape[0]
               for f in faces)


def test_retries_smaller_detection_sizes_before_giving_up(analyzer, monkeypatch):
    calls = []

    def nothing(img, input_size=None, det_thresh=None, **kw):
        calls.append(input_size[0])
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)

    monkeypatch.setattr(analyzer.det, "detect", nothing)
    assert analyzer.detect(astronaut(), det_size=640) == []
    assert calls == [640, 576, 512, 448, 384, 320]


def test_threshold_above_every_score_finds_nothing(analyzer):
    assert analyzer.detect(astronaut(), threshold=0.97) == []
    assert len(analyzer.detect(astronaut(), threshold=0.93)) == 1


# ---------------------------------------------------------------------------------------- selection
def test_select_orders_indices_and_filters(fa):
    big = make_face(300, 10, 400, 110, score=0.7, gender="male", index=0)  # 100 px, top right
    left = make_face(10, 200, 70, 260, score=0.95, gender="female", index=1)  # 60 px, left, low
    small = make_face(150, 100, 170, 120, score=0.99, gender="female", index=2)  # 20 px, middle
    faces = [big, left, small]
    sel = fa.select_faces
    assert sel(faces) == [big, left, small]  # largest first by default
    assert sel(faces, order="left-right") == [left, small, big]
    assert sel(faces, order="right-left") == [big, small, left]
    assert sel(faces, order="top-bottom") == [big, small, left]
    assert sel(faces, order="score") == [small, left, big]
    assert sel(faces, order="smallest") == [small, left, big]
    assert sel(faces, indices="0") == [big]
    assert sel(faces, indices="1,0", order="left-right") == [small, left]
    assert sel(faces, indices=" 2 ; -1 ") == [small, small]
    assert sel(faces, gender="female") == [left, small]
    assert sel(faces, gender="male") == [big]
    assert sel(faces, min_size=50) == [big, left]
    assert sel(faces, min_size=50, gender="female", indices="0") == [left]
    assert sel([], indices="") == []
    with pytest.raises(fa.FaceSelectionError, match="index 3 does not exist"):
        sel(faces, indices="3")
    with pytest.raises(fa.FaceSelectionError, match="not a face index"):
        sel(faces, indices="first")
    no_gender = make_face(0, 0, 50, 50)
    assert sel([no_gender], gender="female") == []


# -------------------------------------------------------------------------------------------- nodes
def detect_node(nodes, analyzer, image, **kw):
    args = dict(order="largest", indices="", gender="any", min_size=0, threshold=0.5, det_size=640,
                if_no_face="error")
    args.update(kw)
    return nodes.I2PDetectFaces().detect(analyzer, image, **args)


def test_loader_node_reports_provider_and_licence(nodes, fa, test_models):
    out = nodes.I2PFaceAnalyzerLoader().load("buffalo_l", "CPU")
    analyzer, text = out["result"]
    assert hasattr(analyzer, "detect")
    assert "CPUExecutionProvider" in text and "NON-COMMERCIAL" in text
    assert "buffalo_l" in nodes.I2PFaceAnalyzerLoader.INPUT_TYPES()["required"]["pack"][0]


def test_detect_node_batch_preview_and_order(nodes, analyzer):
    img = astronaut()
    faces, preview, info = detect_node(nodes, analyzer, as_image(img, img[:, ::-1].copy()), order="left-right")
    assert len(faces) == 2 and tuple(preview.shape) == (2, 512, 512, 3)
    assert float(preview.min()) >= 0 and float(preview.max()) <= 1
    assert not np.allclose(preview[0].numpy(), img / 255.0, atol=1e-3)  # something was drawn
    first = faces.for_image(0).faces
    assert first[0].center[0] < first[1].center[0]  # left to right
    assert faces.sets[0].image_size == (512, 512)
    assert "image 1: 2 found, 2 selected" in info
    largest = detect_node(nodes, analyzer, as_image(img), indices="0")[0]
    assert len(largest.sets[0].faces) == 1 and largest.sets[0].faces[0].size > 90


def test_detect_node_accepts_rgba_grayscale_and_odd_sizes(nodes, analyzer):
    import cv2
    import torch

    rgb = cv2.resize(astronaut(), (517, 333)).astype(np.float32) / 255.0
    rgba = torch.from_numpy(np.concatenate([rgb, np.ones_like(rgb[..., :1])], -1)[None])
    gray = torch.from_numpy(rgb.mean(-1, keepdims=True)[None])
    for image in (rgba, gray):
        faces, preview, _ = detect_node(nodes, analyzer, image)
        assert len(faces.sets[0].faces) == 2 and tuple(preview.shape) == (1, 333, 517, 3)
    tiny = torch.from_numpy(cv2.resize(rgb, (24, 20))[None])
    faces, preview, _ = detect_node(nodes, analyzer, tiny)
    assert len(faces.sets[0].faces) >= 1 and tuple(preview.shape) == (1, 20, 24, 3)


def test_no_face_error_names_the_image_and_pass_through(nodes, analyzer):
    errors = pack_module("core.errors")
    black = np.zeros((512, 512, 3), np.uint8)
    with pytest.raises(errors.I2PError) as info:
        detect_node(nodes, analyzer, as_image(astronaut(), black))
    msg = str(info.value)
    assert "image 1 of the batch" in msg and "no face" in msg and "pass through" in msg
    faces, preview, info_text = detect_node(nodes, analyzer, as_image(astronaut(), black), if_no_face="pass through")
    assert len(faces.sets[0].faces) == 2 and faces.sets[1].faces == []
    assert tuple(preview.shape) == (2, 512, 512, 3) and "image 1: 0 found" in info_text


def test_gender_filter_and_min_size_in_the_node(nodes, analyzer):
    errors = pack_module("core.errors")
    # grey picture, face A painted blue (reads "male" to the test gender model), face B red ("female")
    img = np.full((400, 400, 3), 128, np.uint8)
    img[52:138, 139:209] = (40, 40, 220)
    img[240:312, 16:72] = (220, 40, 40)
    faces = detect_node(nodes, analyzer, as_image(img), gender="male")[0].sets[0].faces
    assert len(faces) == 1 and faces[0].gender == "male" and faces[0].center[0] > 100
    faces = detect_node(nodes, analyzer, as_image(img), gender="female")[0].sets[0].faces
    assert len(faces) == 1 and faces[0].center[0] < 100
    faces = detect_node(nodes, analyzer, as_image(img), min_size=65)[0].sets[0].faces
    assert len(faces) == 1 and faces[0].size >= 65
    with pytest.raises(errors.I2PError, match="image 0 of the batch.*none passed"):
        detect_node(nodes, analyzer, as_image(img), min_size=500)
    with pytest.raises(errors.I2PError, match="index 5 does not exist"):
        detect_node(nodes, analyzer, as_image(img), indices="5")
