"""The swap stage over batches (core/post/swap_images.py) and faces that follow their image
(core/faces/follow.py): planning, pass-through, one identity per source face, and a face that moved
between detection and swap."""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module
from test_face_swap import _face, _photo

si = pack_module("core.post.swap_images")
fs = pack_module("core.post.swap")
follow = pack_module("core.faces.follow")
ft = pack_module("core.faces.types")
errors = pack_module("core.errors")
images = pack_module("core.images")


def _set(img, faces):
    return ft.FaceSet(image_size=img.shape[:2], faces=faces, fingerprint=follow.fingerprint(img))


def _shifted(face, dx, dy):
    d = np.array([dx, dy], np.float32)
    return ft.Face(bbox=face.bbox + np.tile(d, 2), kps=face.kps + d, det_score=face.det_score,
                   embedding=face.embedding)


class MovedAnalyzer:
    """Stands in for the analyzer on the changed image: reports the faces where they now are, in
    detector order (not the user's selection order), plus one face that was never selected."""

    def __init__(self, faces):
        self.faces = faces
        self.calls = 0

    def detect(self, rgb, threshold=0.5, det_size=640):
        self.calls += 1
        return list(reversed(self.faces)) + [_face(60, 60, 40)]


class CountingSwapper:
    """Wraps a swap model and counts the source identities it computes."""

    def __init__(self, model):
        self.model = model
        self.identities = 0
        self.crop_size = model.crop_size
        self.template = None  # the template of the last crop, as crop_affine returned it

    def crop_affine(self, kps):
        affine, self.template = self.model.crop_affine(kps)
        return affine, self.template

    def source_identity(self, image, face):
        self.identities += 1
        return self.model.source_identity(image, face)

    def swap(self, crop, identity):
        return self.model.swap(crop, identity)


@pytest.fixture(scope="module")
def identity_swapper(tmp_path_factory):
    factory = pytest.importorskip("model_factory.swap_models")
    path = factory.build_inswapper(tmp_path_factory.mktemp("idswap2") / "inswapper_128.onnx", identity=True)
    return fs.InSwapper(str(path), "CPU")


def _centroid(mask):
    ys, xs = np.nonzero(mask > 0.5)
    return np.array([xs.mean(), ys.mean()])


# ------------------------------------------------------------------------------------ fingerprint, IoU
def test_fingerprint_tells_one_changed_pixel_and_iou_matches_in_selection_order():
    img = _photo()
    changed = img.copy()
    changed[100, 100, 0] ^= 1
    assert follow.fingerprint(img) == follow.fingerprint(img.copy())
    assert follow.fingerprint(img) != follow.fingerprint(changed)
    assert follow.iou(np.array([0, 0, 10, 10.]), np.array([5, 0, 15, 10.])) == pytest.approx(1 / 3)
    a, b = _face(100, 100, 80), _face(300, 120, 80)
    found = [_shifted(b, 4, -3), _face(200, 250, 60), _shifted(a, -5, 2)]
    got = follow.match_faces([a, b], found)
    assert got[0][0] is found[2] and got[1][0] is found[0]
    assert follow.match_faces([a], [_face(400, 250, 60)])[0][0] is None


# --------------------------------------------------------------------------------------- the plan
def test_plan_pairs_faces_and_passes_face_less_images_through():
    img, other = _photo(seed=1), _photo(seed=2)
    a, b = _face(120, 160, 100, emb_seed=1), _face(360, 160, 100, emb_seed=2)
    target = ft.Faces([_set(img, [a, b]), _set(other, [])])
    source = ft.Faces([_set(img, [a, b])])
    plan = si.plan_swaps([img, other], target, [img], source, "0,1", "1,0")
    assert plan.pairs == [[(0, 1), (1, 0)], []] and plan.total == 2
    assert plan.faces[0] == [a, b] and plan.notes[0] == []
    assert "image 1: no target face" in plan.notes[1][0] and "left unchanged" in plan.notes[1][0]
    no_source = si.plan_swaps([img], ft.Faces([_set(img, [a])]), [other], ft.Faces([_set(other, [])]), "", "")
    assert no_source.total == 0 and "no source face" in no_source.notes[0][0]
    with pytest.raises(errors.I2PError) as info:
        si.plan_swaps([img, other, img], target, [img], source, "", "")
    assert info.value.input_name == "target_faces"
    with pytest.raises(errors.I2PError) as info:
        si.plan_swaps([img], ft.Faces([_set(img, [a])]), [img], source, "0", "3")
    assert info.value.input_name == "target_indices"


def test_run_with_nothing_to_swap_needs_no_model_and_returns_the_input():
    img = _photo(seed=3)
    plan = si.plan_swaps([img], ft.Faces([_set(img, [])]), [img], ft.Faces([_set(img, [])]), "", "")
    out = si.run_swaps(plan, [img], None, fs.SwapOptions())
    assert out.images[0] is img and float(out.seams[0].max()) == 0.0 and out.swapped[0].faces == []
    assert "no target face" in out.lines[0]


def test_run_swaps_a_batch_computing_each_source_identity_once(identity_swapper):
    imgs = [_photo(seed=4), _photo(seed=5)]
    a, b = _face(120, 160, 100, emb_seed=1), _face(360, 160, 100, emb_seed=2)
    target = ft.Faces([_set(imgs[0], [a, b]), _set(imgs[1], [a, b])])
    source = ft.Faces([_set(imgs[0], [a, b])])
    plan = si.plan_swaps(imgs, target, imgs[:1], source, "0,1", "1,0")
    model = CountingSwapper(identity_swapper)
    out = si.run_swaps(plan, imgs, model, fs.SwapOptions(colour_correction=False))
    assert model.identities == 2  # two source faces, four swaps
    assert [f.center for f in out.swapped[1].faces] == [b.center, a.center]
    assert out.swapped[0].fingerprint == follow.fingerprint(out.images[0])  # faces now sit on the output
    assert out.lines == ["image 0: source face 0 -> target face 1; source face 1 -> target face 0",
                         "image 1: source face 0 -> target face 1; source face 1 -> target face 0"]
    for res in out.seams:
        assert res.max() > 0.5


# -------------------------------------------------------------------------------- faces follow the image
def test_swap_alignment_follows_a_face_that_moved_after_detection(identity_swapper):
    """Detection on the photo, then an earlier node (an inpaint, say) moves the faces by (7, -5) px:
    with the analyzer connected the swap re-detects, matches by overlap (keeping the user's order)
    and aligns to the moved faces; without it, the node says so and uses the old positions."""
    dx, dy = 7, -5
    img = _photo(seed=6)
    a, b = _face(140, 170, 110, emb_seed=1), _face(350, 160, 100, emb_seed=2)
    target = ft.Faces([_set(img, [a, b])])
    moved_img = np.roll(img, (dy, dx), axis=(0, 1))
    analyzer = MovedAnalyzer([_shifted(a, dx, dy), _shifted(b, dx, dy)])
    source = ft.Faces([_set(img, [a, b])])
    opts = fs.SwapOptions(colour_correction=False)

    same = si.plan_swaps([img], target, [img], source, "0", "0", analyzer=analyzer)
    assert analyzer.calls == 0 and same.faces[0] == [a, b]  # the detection image itself: nothing to redo

    plan = si.plan_swaps([moved_img], target, [img], source, "0,1", "0,1", analyzer=analyzer)
    assert analyzer.calls == 1
    np.testing.assert_allclose(plan.faces[0][0].kps, a.kps + [dx, dy])
    np.testing.assert_allclose(plan.faces[0][1].kps, b.kps + [dx, dy])
    note = plan.notes[0][0]
    assert "changed since detection" in note and "face 0 IoU" in note and f"moved {np.hypot(dx, dy):.1f} px" in note
    followed = si.run_swaps(plan, [moved_img], identity_swapper, opts)
    assert [f.center for f in followed.swapped[0].faces] == [f.center for f in plan.faces[0]]

    stale_plan = si.plan_swaps([moved_img], target, [img], source, "0,1", "0,1")
    assert stale_plan.faces[0] == [a, b] and "connect 'analyzer'" in stale_plan.notes[0][0]
    # the pasted face masks moved with the faces: same shape, offset by exactly the move
    for k in range(2):
        m_follow = fs.swap_faces(moved_img, plan.faces[0], [identity_swapper.source_identity(None, a)] * 2,
                                 [(0, k)], identity_swapper, opts).masks[0]
        m_stale = fs.swap_faces(moved_img, [a, b], [identity_swapper.source_identity(None, a)] * 2,
                                [(0, k)], identity_swapper, opts).masks[0]
        np.testing.assert_allclose(_centroid(m_follow) - _centroid(m_stale), [dx, dy], atol=0.6)
    # content lands where the face now is: a swapper that marks the template's nose tip puts the mark
    # on the moved nose when following, on the old one when not
    marker = NoseMarker(identity_swapper)
    dots = []
    for faces_used, nose in ((plan.faces[0], a.kps[2] + [dx, dy]), ([a, b], a.kps[2])):
        res = fs.swap_faces(moved_img, faces_used, [marker.source_identity(None, a)], [(0, 0)], marker, opts)
        ys, xs = np.nonzero((res.image[..., 1] < 30) & (res.image[..., 0] > 200) & (res.image[..., 2] > 200))
        assert len(xs) > 0
        dots.append(np.array([xs.mean(), ys.mean()]))
        assert np.abs(dots[-1] - nose).max() < 4  # on the nose, up to the 5-point fit's residual
    np.testing.assert_allclose(dots[0] - dots[1], [dx, dy], atol=0.6)


class NoseMarker(CountingSwapper):
    """Returns the crop with a magenta dot on the template's nose tip (a landmark it must align to)."""

    def swap(self, crop, identity):
        out = crop.copy()
        x, y = np.rint(self.template[2]).astype(int)
        out[y - 2:y + 3, x - 2:x + 3] = (255, 0, 255)
        return out


def test_without_analyzer_a_resized_image_is_an_error_and_with_it_faces_are_scaled_and_matched():
    img = _photo(320, 480, seed=7)
    a = _face(200, 150, 100, emb_seed=1)
    target = ft.Faces([_set(img, [a])])
    import cv2

    half = cv2.resize(img, (240, 160))
    with pytest.raises(errors.I2PError) as info:
        si.plan_swaps([half], target, [img], target, "", "")
    assert info.value.input_name == "target_faces" and "480x320" in str(info.value) and "analyzer" in str(info.value)
    small = ft.Face(bbox=a.bbox / 2, kps=a.kps / 2, det_score=0.9)
    plan = si.plan_swaps([half], target, [img], target, "", "", analyzer=MovedAnalyzer([small]))
    assert plan.faces[0][0] is not a and "480x320 -> 240x160" in plan.notes[0][0]
    np.testing.assert_allclose(plan.faces[0][0].kps, a.kps / 2)


def test_a_face_not_found_again_keeps_its_position_and_says_so():
    img = _photo(seed=8)
    a = _face(200, 150, 100, emb_seed=1)
    target = ft.Faces([_set(img, [a])])
    changed = img.copy()
    changed[0, 0] = 0
    plan = si.plan_swaps([changed], target, [img], target, "", "", analyzer=MovedAnalyzer([]))
    assert plan.faces[0] == [a] and "face 0 not found again" in plan.notes[0][0]


def test_swap_node_follows_faces_the_real_analyzer_finds_moved(test_models):
    """Through the node with the pack's analyzer: the test detector places faces relative to the
    image's non-black extent, so blacking out the right 32 columns moves every face left (a changed
    image); swapped_faces then sit where the analyzer finds them on the changed image."""
    fa = pack_module("core.faces.analysis")
    for mid in ("inswapper_128",):
        test_models.get(mid)
    test_models.group("buffalo_l")
    analyzer = fa.load_analyzer("buffalo_l", "CPU")
    detect = pack_module("nodes.face_analysis").I2PDetectFaces()
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    faces = detect.detect(analyzer, images.from_rgb_uint8([img]), "largest", "", "any", 0, 0.5, 640, "error")[0]
    moved = img.copy()
    moved[:, -32:] = 0
    expected = fa.select_faces(analyzer.detect(moved), "", "largest")
    shift = expected[0].kps - faces.sets[0].faces[0].kps
    assert np.abs(shift[:, 0]).min() > 5  # the faces really moved

    node = pack_module("nodes.face_swap").I2PFaceSwap()
    args = dict(swap_model="inswapper_128.onnx", source_indices="0,1", target_indices="1,0", provider="CPU",
                resolution_boost="none", colour_correction=True, mask_erode=0.05, mask_blur=0.08, seam_width=0,
                content_safety="off", nsfw_threshold=0.8)
    _, _, swapped, info = node.swap(images.from_rgb_uint8([moved]), faces, images.from_rgb_uint8([img]), faces,
                                    analyzer=analyzer, **args)["result"]
    # selection order kept: target 1 then target 0 received a face, at their moved positions
    np.testing.assert_allclose(swapped.sets[0].faces[0].kps, expected[1].kps, atol=1e-4)
    np.testing.assert_allclose(swapped.sets[0].faces[1].kps, expected[0].kps, atol=1e-4)
    assert "changed since detection" in info
    _, _, stale, info = node.swap(images.from_rgb_uint8([moved]), faces, images.from_rgb_uint8([img]), faces,
                                  **args)["result"]
    assert "connect 'analyzer'" in info
    np.testing.assert_allclose(stale.sets[0].faces[0].kps, faces.sets[0].faces[1].kps)


# ------------------------------------------------------------------- restore and score follow too
def test_restore_and_score_follow_a_moved_face(test_models):
    """Restore (analyzer optional) and score (analyzer required) on an image that changed after
    detection: the restored region and the scored crop sit on the faces where the analyzer finds them."""
    fa = pack_module("core.faces.analysis")
    test_models.group("buffalo_l")
    test_models.get("gfpgan-v1.4")
    analyzer = fa.load_analyzer("buffalo_l", "CPU")
    detect = pack_module("nodes.face_analysis").I2PDetectFaces()
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    faces = detect.detect(analyzer, images.from_rgb_uint8([img]), "largest", "0", "any", 0, 0.5, 640, "error")[0]
    moved = img.copy()
    moved[:, -32:] = 0  # the test detector now finds every face further left (see test above)
    where = fa.select_faces(analyzer.detect(moved), "0", "largest")[0]

    restore = pack_module("nodes.face_restore").I2PFaceRestore()
    _, mask, info = restore.restore(images.from_rgb_uint8([moved]), faces, "GFPGANv1.4.pth", 1.0,
                                    "all selected faces", analyzer=analyzer)["result"]
    assert "changed since detection" in info
    ys, xs = np.nonzero(mask[0].numpy() > 0.5)
    old = faces.sets[0].faces[0]
    # the blend mask is centred on the face as found on the changed image, not where it was detected
    assert abs(xs.mean() - where.kps[:, 0].mean()) < abs(xs.mean() - old.kps[:, 0].mean())
    _, _, info = restore.restore(images.from_rgb_uint8([moved]), faces, "GFPGANv1.4.pth", 0.0,
                                 "all selected faces")["result"]  # strength 0: the note alone, no model run
    assert "connect 'analyzer'" in info

    score = pack_module("nodes.identity_score").I2PIdentityScore()
    value, info = score.score(analyzer, images.from_rgb_uint8([moved]), faces, faces, "", "", "mean")["result"]
    assert "changed since detection" in info
    expected = follow_cos(analyzer, moved, where, old.embedding)
    assert value == pytest.approx(expected, abs=1e-5)


def follow_cos(analyzer, rgb, face, reference):
    emb = analyzer.embed(rgb, face)
    return float(np.dot(emb, reference) / (np.linalg.norm(emb) * np.linalg.norm(reference)))
