"""Identity score: cosine of ArcFace embeddings, per face and summarised, in core and through the node."""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module

score = pack_module("core.post.identity_score")
ft = pack_module("core.faces.types")
errors = pack_module("core.errors")
images = pack_module("core.images")


def _unit(seed):
    v = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def _face(emb=None, x=0.0):
    return ft.Face(bbox=np.array([x, 0, x + 10, 10], np.float32), kps=np.zeros((5, 2), np.float32) + x,
                   det_score=0.9, embedding=emb)


def test_cosine():
    a = _unit(1)
    assert score.cosine(a, a) == pytest.approx(1.0)
    assert score.cosine(a, -a) == pytest.approx(-1.0)
    assert score.cosine(a, 3 * a) == pytest.approx(1.0)
    assert score.cosine(a, np.zeros(512)) == 0.0


def test_pairs_follow_the_mapping_and_summary_reports_each_face():
    e0, e1 = _unit(1), _unit(2)
    sources = [_face(e0), _face(e1)]
    results = [_face(x=0.0), _face(x=100.0)]
    # the "result" face at x=100 carries source 0's identity, x=0 carries source 1's
    embed = lambda img, f: e0 if f.bbox[0] == 100.0 else e1  # noqa: E731
    s = score.score_pairs(np.zeros((4, 4, 3), np.uint8), results, sources, [(0, 1), (1, 0)], embed)
    assert [round(x.similarity, 4) for x in s] == [1.0, 1.0]
    wrong = score.score_pairs(np.zeros((4, 4, 3), np.uint8), results, sources, [(0, 0), (1, 1)], embed)
    assert all(abs(x.similarity) < 0.3 for x in wrong)
    value, text = score.summarise(s + wrong, "mean")
    assert value == pytest.approx(np.mean([x.similarity for x in s + wrong]))
    assert text.count("target face") == 4 and "mean:" in text
    first, _ = score.summarise(wrong, "first")
    assert first == pytest.approx(wrong[0].similarity)


def test_node_scores_an_unchanged_photo_against_itself(test_models):
    from skimage import data

    fa = pack_module("core.faces.analysis")
    test_models.group("buffalo_l")
    analyzer = fa.load_analyzer("buffalo_l", "CPU")
    img = np.ascontiguousarray(data.astronaut())
    chosen = fa.select_faces(analyzer.detect(img), "", "largest")
    faces = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=chosen)])
    node = pack_module("nodes.identity_score").I2PIdentityScore()
    value, text = node.score(analyzer, images.from_rgb_uint8([img]), faces, faces, "0,1", "0,1", "mean")["result"]
    assert value == pytest.approx(1.0, abs=1e-4)  # same face, same place: cosine 1
    crossed, text2 = node.score(analyzer, images.from_rgb_uint8([img]), faces, faces, "0,1", "1,0", "mean")["result"]
    assert crossed < 0.99
    assert "target face 1 vs source face 0" in text2 and "NON-COMMERCIAL" in text2
    assert isinstance(value, float)
    with pytest.raises(errors.I2PError) as info:
        node.score(analyzer, images.from_rgb_uint8([img]), faces, faces, "0", "5", "mean")
    assert info.value.input_name == "target_indices"
