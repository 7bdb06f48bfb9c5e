"""The one face geometry (core/faces/align.py) and the one colour transfer (core/faces/colour.py):
the landmark fit against insightface's and facexlib's, crops and warp back, antialiasing, and a
check that no other module of the pack defines a template or a Lab transfer of its own."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from packload import pack_module

al = pack_module("core.faces.align")
PACK = Path(__file__).resolve().parent.parent


def _kps(seed: int, size: float = 150.0, cx: float = 300.0, cy: float = 260.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = size
    kps = np.array([[cx - .18 * s, cy - .1 * s], [cx + .18 * s, cy - .1 * s], [cx + rng.uniform(-.08, .08) * s, cy + .05 * s],
                    [cx - .15 * s, cy + .25 * s], [cx + .15 * s, cy + .25 * s]])
    return (kps + rng.normal(0, 0.01 * s, kps.shape)).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_fit_equals_insightface_estimate_norm(seed):
    from insightface.utils import face_align

    kps = _kps(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for size in (112, 128, 224):
            np.testing.assert_allclose(al.arcface_affine(kps, size), face_align.estimate_norm(kps, size), atol=5e-4)


def test_robust_fit_is_facexlibs_lmeds():
    import cv2

    kps = _kps(3)
    want, _ = cv2.estimateAffinePartial2D(kps, al.ffhq_template(512).astype(np.float32), method=cv2.LMEDS)
    np.testing.assert_allclose(al.ffhq_affine(kps, 512), want, atol=1e-9)
    with pytest.raises(ValueError):
        al.fit_similarity(np.ones((5, 2)), al.ffhq_template(512))


def test_ffhq_template_is_facexlibs():
    # facexlib FaceRestoreHelper's face_template (the right eye's y was once written 240.1936 elsewhere)
    assert al.ffhq_template(512)[1].tolist() == [318.90277, 240.19366]
    np.testing.assert_allclose(al.ffhq_template(1024), al.FFHQ_512 * 2)


def test_warp_back_inverts_the_crop():
    rng = np.random.default_rng(0)
    img = (rng.random((400, 500)) * 255).astype(np.float32)
    m = al.ffhq_affine(_kps(1), 512, robust=False)
    crop = al.warp(img, m, 512, border="zero")
    back = al.warp_back(crop, m, img.shape)
    inner = al.warp_back(np.pad(np.ones((500, 500), np.float32), 6), m, img.shape) > 0.999
    assert inner.sum() > 1000
    assert np.abs(back[inner] - img[inner]).mean() < 25  # a round trip through two bilinear resamplings
    assert (al.warp_back(np.ones((512, 512), np.float32), m, img.shape) == 0).mean() > 0.3  # zero outside


def test_smooth_warp_antialiases_when_shrinking_and_matches_a_resize():
    import cv2

    stripes = np.zeros((600, 600), np.uint8)
    stripes[:, ::2] = 255
    m = np.array([[0.25, 0, 0], [0, 0.25, 0]])
    plain = al.warp(stripes, m, 150).astype(np.float32)
    smooth = al.warp(stripes, m, 150, smooth=True).astype(np.float32)
    inner = plain[10:-10, 10:-10]
    assert abs(inner.mean() - 127.5) > 60 or inner.std() > 30  # bilinear at 1/4 samples the stripes: aliasing
    assert smooth[10:-10, 10:-10].std() < 3 and abs(smooth.mean() - 127.5) < 3
    photo = cv2.GaussianBlur((np.random.default_rng(1).random((600, 600)) * 255).astype(np.uint8), (0, 0), 3)
    area = cv2.resize(photo, (150, 150), interpolation=cv2.INTER_AREA).astype(np.float32)
    centred = np.array([[0.25, 0, -0.375], [0, 0.25, -0.375]])  # resize's pixel-centre convention
    got = al.warp(photo, centred, 150, smooth=True).astype(np.float32)
    assert np.abs(got - area)[10:-10, 10:-10].mean() < 1.5  # close to a box-filtered (area) resize


def test_nsfw_resize_is_antialiased_like_the_model_processor():
    transformers = pytest.importorskip("transformers")
    gate = pack_module("core.post.nsfw_gate")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (700, 500, 3), dtype=np.uint8)
    proc = transformers.ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    want = proc(images=img, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    got = (gate._resize(img, 224).astype(np.float32) / 255.0 - 0.5) / 0.5
    assert np.abs(got - want).max() <= 2.0 / 127.5  # one or two 8-bit levels


def test_colour_transfer_clips_gain_and_leaves_outside_alone():
    col = pack_module("core.faces.colour")
    rng = np.random.default_rng(4)
    flat = np.full((64, 64, 3), 120, np.uint8) + rng.integers(0, 2, (64, 64, 3), dtype=np.uint8)
    busy = np.clip(rng.normal(120, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[8:56, 8:56] = 1
    out = col.match_colour(flat, busy, mask)
    _, s_in = col.lab_stats(flat, mask)
    _, s_out = col.lab_stats(out, mask)
    assert (s_out <= s_in * col.MAX_GAIN + 0.5).all()  # noise is not blown up to the busy target's spread
    assert np.array_equal(out[mask == 0], flat[mask == 0])
    assert np.array_equal(col.match_colour(flat, busy, np.zeros_like(mask)), flat)


# ------------------------------------------------------------------------------- one of each
_TEMPLATE_NUMBERS = ("38.2946", "73.5318", "192.98138", "318.90277", "240.1936", "51.642", "39.730", "72.270")


def _pack_sources():
    for folder in ("core", "nodes", "models", "cli"):
        yield from (PACK / folder).rglob("*.py")


def test_templates_and_colour_transfer_are_defined_once():
    """grep, as a test: the template numbers appear only in core/faces/align.py, the Lab conversion
    for a colour transfer only in core/faces/colour.py, and nobody else calls the fit or warp APIs of
    insightface (norm_crop, estimate_norm) or OpenCV's similarity estimate."""
    hits: dict[str, set[str]] = {}
    for path in _pack_sources():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(PACK).as_posix()
        for token in _TEMPLATE_NUMBERS:
            if token in text:
                hits.setdefault("template", set()).add(rel)
        if re.search(r"COLOR_(RGB|BGR)2LAB", text):
            hits.setdefault("lab", set()).add(rel)
        if re.search(r"face_align\.|estimateAffinePartial2D|SimilarityTransform\(|getAffineTransform", text):
            hits.setdefault("fit", set()).add(rel)
    assert hits.get("template") == {"core/faces/align.py"}
    assert hits.get("lab") == {"core/faces/colour.py"}
    assert hits.get("fit") == {"core/faces/align.py"}
