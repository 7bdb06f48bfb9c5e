"""Pre-paste: landmark similarity warp, Lab colour match inside the mask, mask blend."""
from __future__ import annotations

import math

import numpy as np
import pytest

from packload import pack_module

pp = pack_module("core.inpaint.prepaste")
cm = pack_module("core.faces.colour")
al = pack_module("core.faces.align")
ft = pack_module("core.faces.types")

# a frontal face's five landmarks (left eye, right eye, nose, mouth corners) in a 200 px box
KPS = np.array([[70, 80], [130, 80], [100, 115], [78, 145], [122, 145]], np.float64)


def similarity(scale, angle_deg, tx, ty):
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0, 0, 0), (1.7, 12, 40, -25), (0.6, -30, 210, 90), (2.4, 170, 300, 310)])
def test_landmark_warp_error_under_one_pixel(scale, angle, tx, ty):
    rng = np.random.default_rng(1)
    truth = similarity(scale, angle, tx, ty)
    dst = al.transform_points(truth, KPS) + rng.normal(0, 0.3, KPS.shape)  # detector jitter
    matrix = al.fit_similarity(KPS, dst)
    err = np.linalg.norm(al.transform_points(matrix, KPS) - dst, axis=1)
    assert err.max() < 1.0
    # and the fitted transform is the true one (not merely consistent on these five points)
    probe = np.array([[0, 0], [200, 0], [0, 200], [200, 200]], np.float64)
    assert np.abs(al.transform_points(matrix, probe) - al.transform_points(truth, probe)).max() < 1.5 * scale + 1


def test_warped_image_puts_source_landmarks_on_target_landmarks():
    """Dots drawn at the source landmarks land within 1 px of the target landmarks after the warp."""
    import cv2

    src = np.zeros((200, 200, 3), np.uint8)
    truth = similarity(1.3, 20, 60, 30)
    dst_kps = al.transform_points(truth, KPS)
    matrix = al.fit_similarity(KPS, dst_kps)
    for i, (x, y) in enumerate(KPS):
        one = src.copy()
        cv2.circle(one, (int(x), int(y)), 3, (255, 255, 255), -1)
        warped, _ = pp.warp_to(one, matrix, (400, 400))
        g = warped[..., 0].astype(np.float64)
        ys, xs = np.mgrid[0:400, 0:400]
        cx, cy = (g * xs).sum() / g.sum(), (g * ys).sum() / g.sum()
        assert math.hypot(cx - dst_kps[i, 0], cy - dst_kps[i, 1]) < 1.0, i


def test_color_match_moves_lab_statistics_inside_mask_only():
    rng = np.random.default_rng(2)
    src = np.clip(rng.normal((180, 120, 90), 20, (120, 120, 3)), 0, 255).astype(np.uint8)
    dst = np.clip(rng.normal((110, 140, 170), 8, (120, 120, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((120, 120), np.float32)
    mask[20:100, 20:100] = 1
    out = cm.match_colour(src, dst, mask, strength=1.0)
    m_out, s_out = cm.lab_stats(out, mask)
    m_dst, s_dst = cm.lab_stats(dst, mask)
    assert np.abs(m_out - m_dst).max() < 1.5
    assert np.abs(s_out - s_dst).max() < 1.5
    assert np.array_equal(out[mask == 0], src[mask == 0])
    half = cm.match_colour(src, dst, mask, strength=0.5)
    m_half, _ = cm.lab_stats(half, mask)
    m_src, _ = cm.lab_stats(src, mask)
    assert np.abs(m_half - (m_src + m_dst) / 2).max() < 1.5
    with pytest.raises(ValueError):
        cm.lab_stats(src, np.zeros((120, 120)))


def _face(kps, size_hw):
    kps = np.asarray(kps, np.float32)
    lo, hi = kps.min(0) - 30, kps.max(0) + 30
    return ft.Face(bbox=np.array([lo[0], lo[1], hi[0], hi[1]], np.float32), kps=kps, det_score=0.9)


def test_prepaste_face_pastes_aligned_colour_matched_face_and_keeps_the_rest():
    rng = np.random.default_rng(3)
    target = rng.integers(60, 120, (300, 400, 3), dtype=np.uint8)
    source = np.full((200, 200, 3), (220, 40, 40), np.uint8)
    source[60:100, 60:140] = (20, 20, 200)  # a feature near the eyes
    truth = similarity(1.2, -10, 120, 40)
    tkps = al.transform_points(truth, KPS)
    mask = np.zeros((300, 400), np.float32)
    cx, cy = tkps[:, 0].mean(), tkps[:, 1].mean()
    ys, xs = np.mgrid[0:300, 0:400]
    mask[(xs - cx) ** 2 + (ys - cy) ** 2 < 70 ** 2] = 1
    out, err = pp.prepaste_face(target, tkps, mask, source, KPS, color_strength=0.0, feather=4)
    assert err < 1.0
    assert np.array_equal(out[mask == 0], target[mask == 0])
    # the nose of the source (red area) lands on the target's nose, the eye band (blue) on its eyes
    nx, ny = tkps[2].round().astype(int)
    assert out[ny, nx, 0] > 200
    ex, ey = ((tkps[0] + tkps[1]) / 2).round().astype(int)
    assert out[ey, ex, 2] > 180
    matched, _ = pp.prepaste_face(target, tkps, mask, source, KPS, color_strength=1.0, feather=4)
    inner = mask > 0
    assert abs(matched[inner].mean() - target[inner].mean()) < abs(out[inner].mean() - target[inner].mean())


def test_prepaste_batch_maps_source_faces_and_rejects_bad_input():
    err = pack_module("core.errors")
    target = np.full((300, 400, 3), 90, np.uint8)
    source = np.full((200, 200, 3), 200, np.uint8)
    t1 = al.transform_points(similarity(0.5, 0, 20, 60), KPS)
    t2 = al.transform_points(similarity(0.5, 0, 250, 60), KPS)
    mask = np.zeros((300, 400), np.float32)
    mask[80:150, 40:110] = 1
    mask[80:150, 270:340] = 1
    faces = ft.Faces([ft.FaceSet((300, 400), [_face(t1, None), _face(t2, None)])])
    src_faces = ft.Faces([ft.FaceSet((200, 200), [_face(KPS, None)])])
    out, lines = pp.prepaste_batch([target], [mask], faces, [source], src_faces, 0.0, 2)
    assert len(out) == 1 and len(lines) == 2
    assert out[0][110, 75, 0] > 150 and out[0][110, 305, 0] > 150  # one source face onto both targets
    assert np.array_equal(out[0][mask == 0], target[mask == 0])
    with pytest.raises(err.I2PError, match="faces"):
        pp.prepaste_batch([target[:200]], [mask[:200]], faces, [source], src_faces)
    with pytest.raises(err.I2PError, match="mask"):
        pp.prepaste_batch([target], [mask[:, :300]], faces, [source], src_faces)
    empty = ft.Faces([ft.FaceSet((200, 200), [])])
    with pytest.raises(err.I2PError, match="source_faces"):
        pp.prepaste_batch([target], [mask], faces, [source], empty)
