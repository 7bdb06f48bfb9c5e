"""Faces known on an image by its pixel fingerprint (core/faces/known.py): the detector runs once per
image, never answers for other pixels, and the nodes after a swap or restore take the faces those
nodes placed instead of detecting again, with the same result."""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module
from test_face_swap import _face, _photo

known = pack_module("core.faces.known")
follow = pack_module("core.faces.follow")
ft = pack_module("core.faces.types")
si = pack_module("core.post.swap_images")
fs = pack_module("core.post.swap")
images = pack_module("core.images")


class CountingAnalyzer:
    """Reports fixed faces per image (by a pixel it reads), counting the detector runs."""

    def __init__(self, faces_by_red: dict[int, list]):
        self.faces_by_red = faces_by_red
        self.calls = 0

    def detect(self, rgb, threshold=0.5, det_size=640):
        self.calls += 1
        return [ft.Face(bbox=f.bbox.copy(), kps=f.kps.copy(), det_score=f.det_score, embedding=f.embedding)
                for f in self.faces_by_red.get(int(rgb[0, 0, 0]), [])]


@pytest.fixture(autouse=True)
def _fresh():
    known.clear()
    yield
    known.clear()


def test_the_detector_runs_once_per_image_and_never_answers_for_other_pixels():
    img = _photo(seed=11)
    img[0, 0, 0] = 1
    other = img.copy()
    other[0, 0, 0] = 2  # one pixel differs
    a, b = _face(120, 160, 100, emb_seed=1), _face(330, 150, 90, emb_seed=2)
    analyzer = CountingAnalyzer({1: [a], 2: [b]})

    first = known.detect(analyzer, img, follow.fingerprint(img))
    again = known.detect(analyzer, img.copy(), follow.fingerprint(img.copy()))  # same pixels, another array
    assert analyzer.calls == 1
    assert len(again) == 1 and np.array_equal(again[0].kps, first[0].kps) and np.array_equal(again[0].kps, a.kps)
    again[0].kps += 50  # a caller editing its faces does not change what the next caller gets
    assert np.array_equal(known.detect(analyzer, img, follow.fingerprint(img))[0].kps, a.kps)

    got = known.detect(analyzer, other, follow.fingerprint(other))
    assert analyzer.calls == 2 and np.array_equal(got[0].kps, b.kps)  # its own faces, not img's
    known.detect(analyzer, img, follow.fingerprint(img), threshold=0.3)  # another threshold is another detection
    known.detect(analyzer, img, follow.fingerprint(img), det_size=320)  # so is another detector size
    assert analyzer.calls == 4
    second = CountingAnalyzer({1: [b]})  # another analyzer never gets the first one's faces
    assert np.array_equal(known.detect(second, img, follow.fingerprint(img))[0].kps, b.kps) and second.calls == 1


def test_the_detect_node_runs_the_detector_once_for_the_same_photo():
    img = _photo(seed=12)
    img[0, 0, 0] = 1
    a, b = _face(120, 160, 100, emb_seed=1), _face(330, 150, 90, emb_seed=2)
    analyzer = CountingAnalyzer({1: [a, b]})
    analyzer.device_label = "counting"
    node = pack_module("nodes.face_analysis").I2PDetectFaces()
    person1 = node.detect(analyzer, images.from_rgb_uint8([img]), "left-right", "0", "any", 0, 0.5, 640, "error")[0]
    person2 = node.detect(analyzer, images.from_rgb_uint8([img]), "left-right", "1", "any", 0, 0.5, 640, "error")[0]
    assert analyzer.calls == 1
    assert np.array_equal(person1.sets[0].faces[0].kps, a.kps) and np.array_equal(person2.sets[0].faces[0].kps, b.kps)


def test_after_a_swap_the_next_node_takes_the_placed_faces_without_detecting(swapper):
    img = _photo(seed=13)
    a, b = _face(140, 170, 110, emb_seed=1), _face(350, 160, 100, emb_seed=2)
    target = ft.Faces([ft.FaceSet(image_size=img.shape[:2], faces=[a, b], fingerprint=follow.fingerprint(img))])
    plan = si.plan_swaps([img], target, [img], target, "1", "0")
    swapped = si.run_swaps(plan, [img], swapper, fs.SwapOptions()).images[0]
    assert not np.array_equal(swapped, img)

    analyzer = CountingAnalyzer({})
    faces, notes = follow.faces_on(target.sets[0], swapped, analyzer, "node", "faces", "image 0")
    assert analyzer.calls == 0
    assert [f.kps.tolist() for f in faces] == [a.kps.tolist(), b.kps.tolist()]
    assert faces[0].embedding is None  # the identity there changed: it is not carried
    assert "changed since detection" in notes[0] and "taken from the node that changed it" in notes[0]
    # no analyzer is needed to know them: no "connect 'analyzer'" warning either
    faces, notes = follow.faces_on(target.sets[0], swapped, None, "node", "faces", "image 0")
    assert [f.kps.tolist() for f in faces] == [a.kps.tolist(), b.kps.tolist()] and "taken from the node" in notes[0]
    nearly = swapped.copy()
    nearly[-1, -1, 2] ^= 1  # one pixel away from the swap's output: its placed faces do not answer
    assert known.placed(follow.fingerprint(nearly)) is None and known.placed(follow.fingerprint(swapped))

    # a FACES with a face the swap did not place: the placed faces do not answer, the detector does
    c = _face(60, 60, 40)
    wider = ft.FaceSet(image_size=img.shape[:2], faces=[a, c], fingerprint=follow.fingerprint(img))
    analyzer = CountingAnalyzer({int(swapped[0, 0, 0]): [a, c]})
    faces, notes = follow.faces_on(wider, swapped, analyzer, "node", "faces", "image 0")
    assert analyzer.calls == 1 and "detected again" in notes[0]
    assert np.array_equal(faces[1].kps, c.kps)


def test_restore_and_score_after_a_swap_give_the_same_result_without_detecting(test_models):
    """fast_swap's chain with the real test models: with the faces the swap and restore placed, the
    restore and the score run no detector and give exactly what detecting again gave."""
    fa = pack_module("core.faces.analysis")
    test_models.group("buffalo_l")
    test_models.get("inswapper_128")
    test_models.get("gfpgan-v1.4")
    analyzer = fa.load_analyzer("buffalo_l", "CPU")
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    face_photo = np.ascontiguousarray(img[:, ::-1])
    detect = pack_module("nodes.face_analysis").I2PDetectFaces()
    ref_faces = detect.detect(analyzer, images.from_rgb_uint8([img]), "largest", "", "any", 0, 0.5, 640, "error")[0]
    src_faces = detect.detect(analyzer, images.from_rgb_uint8([face_photo]), "largest", "0", "any", 0, 0.5, 640,
                              "error")[0]
    swap = pack_module("nodes.face_swap").I2PFaceSwap()
    restore = pack_module("nodes.face_restore").I2PFaceRestore()
    score = pack_module("nodes.identity_score").I2PIdentityScore()
    swapped = swap.swap(images.from_rgb_uint8([img]), ref_faces, images.from_rgb_uint8([face_photo]), src_faces,
                        "inswapper_128.onnx", "", "", "CPU", "none", True, 0.05, 0.08, 0, "off", 0.8,
                        analyzer=analyzer)["result"][0]

    calls = []
    real = type(analyzer).detect
    try:
        type(analyzer).detect = lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
        results = {}
        for way in ("placed", "detected"):
            if way == "detected":
                known.clear()  # what the pack did before: detect again on every changed image
            calls.clear()
            restored, _, r_info = restore.restore(swapped, ref_faces, "GFPGANv1.4.pth", 0.9, "all selected faces",
                                                  analyzer=analyzer)["result"]
            if way == "detected":
                known.clear()
            value, s_info = score.score(analyzer, restored, ref_faces, src_faces, "", "", "mean")["result"]
            results[way] = (restored.numpy(), value, len(calls), r_info + s_info)
    finally:
        type(analyzer).detect = real
    placed, detected = results["placed"], results["detected"]
    assert placed[2] == 0 and detected[2] == 2
    assert "taken from the node" in placed[3] and "detected again" in detected[3]
    np.testing.assert_array_equal(placed[0], detected[0])  # the test detector finds them where they were placed
    assert placed[1] == pytest.approx(detected[1], abs=1e-6)


@pytest.fixture(scope="module")
def swapper(tmp_path_factory):
    factory = pytest.importorskip("model_factory.swap_models")
    path = factory.build_inswapper(tmp_path_factory.mktemp("knownswap") / "inswapper_128.onnx")
    return fs.InSwapper(str(path), "CPU")
