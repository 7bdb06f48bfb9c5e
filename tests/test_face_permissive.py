"""The commercially usable analyzer: YuNet through OpenCV's own cv2.FaceDetectorYN, AuraFace embeddings.

The test files are the factory's real-format models (tests/model_factory/permissive_models.py): a
YuNet-format ONNX (input ``input``, outputs cls/obj/bbox/kps at strides 8/16/32) that OpenCV really
loads and decodes, reporting the same two faces as the fake SCRFD (A on the astronaut's face, B lower
left), and an AuraFace-format ArcFace ONNX.
"""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module

errors = pack_module("core.errors")
ft = pack_module("core.faces.types")
images = pack_module("core.images")


@pytest.fixture(scope="module")
def fa(test_models):
    test_models.group("yunet+auraface")
    test_models.group("buffalo_l")
    return pack_module("core.faces.analysis")


@pytest.fixture(scope="module")
def pm():
    return pack_module("core.faces.permissive")


@pytest.fixture(scope="module")
def analyzer(fa, pm):
    return fa.load_analyzer(pm.PACK, "CPU")


def astronaut():
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


def test_factory_yunet_is_run_by_opencv_itself(test_models):
    import cv2

    path = test_models.get("yunet-2023mar")
    det = cv2.FaceDetectorYN.create(str(path), "", (640, 480), 0.5, 0.3, 5000)
    n, rows = det.detect(np.full((480, 640, 3), 120, np.uint8))
    assert rows is not None and rows.shape == (2, 15)
    a = rows[np.argmin(rows[:, 14])]  # face A, score 0.90
    np.testing.assert_allclose(a[:4], [0.348 * 640, 0.129 * 480, 0.175 * 640, 0.215 * 480], atol=0.5)
    np.testing.assert_allclose(sorted(rows[:, 14]), [0.90, 0.96], atol=1e-4)
    det.setInputSize((300, 200))  # not a multiple of 32: OpenCV pads; the fake only sees the image
    _, rows = det.detect(np.full((200, 300, 3), 90, np.uint8))
    assert rows.shape == (2, 15) and rows[:, 0].max() < 300
    _, rows = det.detect(np.zeros((200, 300, 3), np.uint8))  # a black image has no face
    assert rows is None or len(rows) == 0


def test_astronaut_face_lands_on_her_face_with_auraface_embeddings(analyzer, fa):
    img = astronaut()
    faces = analyzer.detect(img)
    assert [round(f.det_score, 2) for f in faces] == [0.96, 0.90]  # score order: B, A
    measured = np.array([[204, 102], [247, 103.5], [223.5, 122.5], [205, 143.5], [242.5, 143.5]])
    assert np.abs(faces[1].kps - measured).max() < 3
    for f in faces:
        assert f.embedding.shape == (512,) and abs(np.linalg.norm(f.embedding) - 1) < 1e-5
        assert f.gender is None and f.age is None  # no gender/age model: nothing guessed
    np.testing.assert_allclose(analyzer.embed(img, faces[1]), faces[1].embedding, atol=1e-6)
    # the same crop in buffalo_l's ArcFace space is a different vector: the recognizers differ
    buffalo = fa.load_analyzer("buffalo_l", "CPU")
    assert float(buffalo.embed(img, faces[1]) @ faces[1].embedding) < 0.9
    assert "AuraFace" in analyzer.recognizer and "buffalo_l" in buffalo.recognizer


def test_large_images_are_scaled_to_det_size_and_coordinates_come_back(analyzer):
    import cv2

    big = cv2.resize(astronaut(), (1536, 1536))
    faces = analyzer.detect(big, det_size=640)
    a = min(faces, key=lambda f: f.det_score)
    np.testing.assert_allclose(a.bbox, np.array([0.348, 0.129, 0.523, 0.344]) * 1536, atol=6)
    calls = []
    original = analyzer._detect_at
    analyzer._detect_at = lambda bgr, scale, thr: calls.append(scale) or original(bgr, scale, thr)
    try:
        assert analyzer.detect(np.zeros((300, 300, 3), np.uint8)) == []  # no face: smaller sizes tried ...
        assert calls == [1.0]  # ... but a 300 px image is never scaled, so it is looked at once
        calls.clear()
        analyzer.detect(np.zeros((1280, 1280, 3), np.uint8), det_size=640)
        assert calls == [0.5, 0.45, 0.4, 0.35, 0.3, 0.25]  # 640, 576, ... 320 px
    finally:
        del analyzer._detect_at


def test_loader_offers_it_reports_licences_and_no_gender(fa, pm, test_models):
    nodes = pack_module("nodes.face_analysis")
    choices = nodes.I2PFaceAnalyzerLoader.INPUT_TYPES()["required"]["pack"][0]
    assert choices[:2] == ["buffalo_l", pm.PACK]
    analyzer, text = nodes.I2PFaceAnalyzerLoader().load(pm.PACK, "CPU")["result"]
    assert "MIT" in text and "Apache-2.0" in text and "NON-COMMERCIAL" not in text
    assert "no gender/age model" in text
    assert fa.load_analyzer(pm.PACK, "CPU") is analyzer  # cached


def test_auraface_folder_is_not_offered_as_an_insightface_pack(fa, pm, test_models):
    # fal's repository ships InsightFace's SCRFD next to AuraFace; loading that folder as an InsightFace
    # pack would quietly run the non-commercial detector
    test_models.get("auraface-v1")
    assert "auraface" not in fa.list_packs()


def test_gender_filter_says_plainly_that_there_is_no_gender_model(analyzer):
    nodes = pack_module("nodes.face_analysis")
    img = images.from_rgb_uint8([astronaut()])
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PDetectFaces().detect(analyzer, img, "largest", "", "female", 0, 0.5, 640, "error")
    assert info.value.input_name == "gender" and "no gender model" in str(info.value)
    faces, _, text = nodes.I2PDetectFaces().detect(analyzer, img, "left-right", "", "any", 0, 0.5, 640, "error")
    assert len(faces.sets[0].faces) == 2 and faces.recognizer == analyzer.recognizer
    assert "female" not in text and "male" not in text


def test_missing_files_name_folder_and_download_ids(pm, tmp_path, monkeypatch):
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    with pytest.raises(errors.I2PError) as info:
        pm.PermissiveAnalyzer("CPU")
    msg = str(info.value)
    assert "models/facedetection/face_detection_yunet_2023mar.onnx" in msg
    assert "models download yunet-2023mar auraface-v1" in msg


def test_a_file_that_is_not_yunet_is_a_clear_error(pm, tmp_path, monkeypatch, test_models):
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    (tmp_path / "facedetection").mkdir()
    (tmp_path / "facedetection" / "face_detection_yunet_2023mar.onnx").write_bytes(b"not an onnx file")
    rec = tmp_path / "insightface" / "models" / "auraface" / "glintr100.onnx"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(test_models.get("auraface-v1").read_bytes())
    with pytest.raises(errors.I2PError, match="could not load face_detection_yunet_2023mar.onnx as a YuNet"):
        pm.PermissiveAnalyzer("CPU")


def test_identity_score_uses_auraface_and_says_so(analyzer, fa):
    img = astronaut()
    chosen = fa.select_faces(analyzer.detect(img), "", "largest")
    faces = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=chosen)], recognizer=analyzer.recognizer)
    node = pack_module("nodes.identity_score").I2PIdentityScore()
    value, text = node.score(analyzer, images.from_rgb_uint8([img]), faces, faces, "0,1", "0,1", "mean")["result"]
    assert value == pytest.approx(1.0, abs=1e-4)
    assert "AuraFace v1" in text and "Apache-2.0" in text and "NON-COMMERCIAL" not in text
    # source faces embedded by buffalo_l cannot be scored with AuraFace: different spaces
    buffalo = fa.load_analyzer("buffalo_l", "CPU")
    other = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=buffalo.detect(img))],
                     recognizer=buffalo.recognizer)
    with pytest.raises(errors.I2PError) as info:
        node.score(analyzer, images.from_rgb_uint8([img]), faces, other, "0", "0", "mean")
    assert info.value.input_name == "source_faces" and "different spaces" in str(info.value)


def test_auto_prompt_fallback_says_there_is_no_gender_or_age(analyzer, monkeypatch, tmp_path):
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(var, raising=False)  # no key: the node falls back to its template
    monkeypatch.setenv("I2P_USER_DIR", str(tmp_path / "user"))
    img = astronaut()
    faces = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=analyzer.detect(img)[:1])])
    node = pack_module("nodes.auto_prompt").I2PAutoPromptGemini()
    result = node.generate(images.from_rgb_uint8([img]), "", "gemini-2.5-flash", 0.4, 0, True, 10.0, 0, False,
                           faces=faces)["result"]
    description, status = result[2], result[3]
    assert description == "a photo of a person"  # no invented gender or age
    assert status.startswith("FALLBACK local template (no gender/age: the face analyzer has no gender/age model")


def test_faceid_and_inswapper_refuse_auraface_faces(analyzer):
    """They were trained on buffalo_l's ArcFace space: an AuraFace embedding would give another person."""
    img = astronaut()
    faces = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=analyzer.detect(img)[:1])],
                     recognizer=analyzer.recognizer)
    apply = pack_module("core.identity.apply")
    with pytest.raises(errors.I2PError) as info:
        apply.build_identity("faceid", [img], faces)
    assert info.value.input_name == "faces" and "AuraFace embeddings" in str(info.value)
    swap = pack_module("nodes.face_swap").I2PFaceSwap()
    tensor = images.from_rgb_uint8([img])
    with pytest.raises(errors.I2PError) as info:
        swap.swap(tensor, faces, tensor, faces, "inswapper_128.onnx", "", "", "CPU", "none", True, 0.05, 0.08, 0,
                  "off", 0.8)
    assert info.value.input_name == "source_faces" and "inswapper_128.onnx" in str(info.value)
