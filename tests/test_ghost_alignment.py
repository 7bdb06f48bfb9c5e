"""Ghost's alignment: insightface 0.2.1's five pose templates, least-error pick per face, used for the
target crop, the source ArcFace crop and the paste mask (numerics note, "Differs" 1)."""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module
from test_face_swap import _face, _photo

fp = pack_module("core.faces.align")
fs = pack_module("core.post.swap")
ft = pack_module("core.faces.types")


def _pose_landmarks(pose: int, scale: float, angle: float, shift, seed: int) -> np.ndarray:
    """Landmarks of a face in pose ``pose`` (a template of insightface 0.2.1 moved into a photo)."""
    a = np.radians(angle)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = fp.pose_templates(112)[pose] @ rot.T + np.asarray(shift, float)
    return (pts + np.random.default_rng(seed).normal(0, 0.01 * scale * 40, pts.shape)).astype(np.float32)


def _skimage_estimate(kps, template):
    """insightface 0.2.1's fit of one template (scikit-image), written independently of the pack."""
    import warnings

    from skimage import transform as trans

    tform = trans.SimilarityTransform()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 0.2.1 calls estimate(); newer scikit-image warns
        tform.estimate(np.asarray(kps, np.float64), np.asarray(template, np.float64))
    return tform.params[:2]


@pytest.mark.parametrize("pose", range(5))
def test_ghost_picks_the_least_error_pose_template(pose):
    gs = pack_module("core.post.ghost")
    for seed, (scale, angle, shift) in enumerate([(1.0, 0, (0, 0)), (2.7, 12, (300, 120)), (4.1, -20, (80, 500))]):
        kps = _pose_landmarks(pose, scale, angle, shift, seed)
        m, chosen = gs.GhostSwapper.align_224(kps)
        assert chosen == pose, (fp.POSE_NAMES[pose], fp.POSE_NAMES[chosen])
        # insightface 0.2.1 estimate_norm(kps, 224, mode='None'): least summed distance over src_map[224]
        templates = fp.pose_templates(224)
        errs = [np.linalg.norm(fp.transform_points(_skimage_estimate(kps, t), kps) - t, axis=1).sum()
                for t in templates]
        assert int(np.argmin(errs)) == chosen
        np.testing.assert_allclose(m, _skimage_estimate(kps, templates[chosen]), atol=1e-6)


def test_ghost_frontal_and_profile_faces_crop_paste_and_source_on_their_template(test_models, monkeypatch):
    gs = pack_module("core.post.ghost")
    frontal = _face(240, 160, 120).kps  # the tests' frontal face: symmetric eyes, nose in the middle
    # a face turned to a left profile: eyes close together, the nose far to the left of them
    profile = np.array([[251, 150], [262, 150], [212, 188], [250, 228], [261, 229]], np.float32)
    picks = {}
    for name, kps in (("frontal", frontal), ("left profile", profile)):
        m, template = gs.GhostSwapper.crop_affine(kps)
        picks[name] = fp.POSE_NAMES[gs.GhostSwapper.align_224(kps)[1]]
        np.testing.assert_allclose(template, fp.pose_templates(224)[fp.POSE_NAMES.index(picks[name])] * 256 / 224)
        # the landmarks land on the chosen template in the 256 crop (within the fit's residual)
        assert np.abs(fp.transform_points(m, kps) - template).max() < 6
    assert picks == {"frontal": "frontal", "left profile": "left profile"}
    # ArcFace's frontal template would put this face ~11 % larger than Ghost's frontal one
    assert fp.scale_of(fp.arcface_affine(frontal, 224)) > 1.08 * fp.scale_of(gs.GhostSwapper.align_224(frontal)[0])
    # the source crop of Ghost's ArcFace is cut with the same alignment at 224
    model = gs.load_ghost(test_models.get("ghost-unet-2blocks"), test_models.get("ghost-arcface"))
    seen = []
    real_warp = gs.align.warp

    def recording(image, m, size, **kw):
        seen.append((np.array(m), size))
        return real_warp(image, m, size, **kw)

    monkeypatch.setattr(gs.align, "warp", recording)
    model.source_identity(_photo(seed=4), ft.Face(bbox=np.array([200, 130, 290, 260], np.float32), kps=profile,
                                                  det_score=0.9))
    assert len(seen) == 1 and seen[0][1] == 224
    np.testing.assert_allclose(seen[0][0], gs.GhostSwapper.align_224(profile)[0])
    # and the swap loop crops and pastes through crop_affine (the paste mask follows the template)
    seen.clear()
    fs.swap_one(_photo(seed=5), ft.Face(bbox=np.array([200, 130, 290, 260], np.float32), kps=profile, det_score=0.9),
                np.zeros((1, 512), np.float32), model, fs.SwapOptions(colour_correction=False))
    np.testing.assert_allclose(seen[0][0], gs.GhostSwapper.crop_affine(profile)[0])
