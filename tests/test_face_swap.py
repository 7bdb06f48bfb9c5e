"""Face swap: mapping, paste-back geometry, seam mask, models (inswapper fp32/fp16, Ghost), node errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from packload import pack_module

fs = pack_module("core.post.swap")
fp = pack_module("core.faces.align")
errors = pack_module("core.errors")
ft = pack_module("core.faces.types")


def _face(cx: float, cy: float, size: float, emb_seed: int | None = None) -> "ft.Face":
    """A face whose 5 landmarks sit where a frontal face of ``size`` px centred at (cx, cy) has them."""
    s = size
    kps = np.array([[cx - 0.18 * s, cy - 0.1 * s], [cx + 0.18 * s, cy - 0.1 * s], [cx, cy + 0.05 * s],
                    [cx - 0.15 * s, cy + 0.25 * s], [cx + 0.15 * s, cy + 0.25 * s]], np.float32)
    emb = None
    if emb_seed is not None:
        e = np.random.default_rng(emb_seed).standard_normal(512).astype(np.float32)
        emb = e / np.linalg.norm(e)
    bbox = np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], np.float32)
    return ft.Face(bbox=bbox, kps=kps, det_score=0.9, embedding=emb)


def _photo(h: int = 320, w: int = 480, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus mild noise: every pixel different, no flat area."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([40 + 150 * xx / w, 60 + 120 * yy / h, 200 - 100 * (xx + yy) / (w + h)], -1)
    img += np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def identity_swapper(tmp_path_factory):
    factory = pytest.importorskip("model_factory.swap_models")
    path = factory.build_inswapper(tmp_path_factory.mktemp("idswap") / "inswapper_128.onnx", identity=True)
    return fs.InSwapper(str(path), "CPU")


# ------------------------------------------------------------------------------------------ mapping
def test_mapping_pairs_source_to_target_in_order():
    assert fs.parse_mapping("0,1", "1,0", 2, 2) == [(0, 1), (1, 0)]
    assert fs.parse_mapping("", "", 2, 3) == [(0, 0), (1, 1)]
    assert fs.parse_mapping("1", "", 2, 2) == [(1, 0)]
    assert fs.parse_mapping("", "2, 0", 2, 3) == [(0, 2), (1, 0)]


@pytest.mark.parametrize("src,tgt,n_src,n_tgt,input_name", [
    ("0,1", "0,2", 2, 2, "target_indices"),  # index out of range
    ("0,5", "0,1", 2, 2, "source_indices"),
    ("0,1", "0", 2, 2, "target_indices"),  # lengths differ
    ("0,1", "1,1", 2, 2, "target_indices"),  # one target twice
    ("a", "0", 1, 1, "source_indices"),
    ("", "", 0, 2, "source_faces"),
    ("", "", 2, 0, "target_faces"),
])
def test_mapping_errors_name_the_input(src, tgt, n_src, n_tgt, input_name):
    with pytest.raises(errors.I2PError) as info:
        fs.parse_mapping(src, tgt, n_src, n_tgt)
    assert info.value.input_name == input_name
    assert "Fix:" in str(info.value)


# -------------------------------------------------------------------------------- paste-back geometry
def test_identity_swapper_leaves_outside_of_face_mask_unchanged(identity_swapper):
    img = _photo()
    face = _face(240, 160, 120, emb_seed=1)
    opts = fs.SwapOptions(colour_correction=False)
    res = fs.swap_faces(img, [face], [identity_swapper.source_identity(None, face)], [(0, 0)], identity_swapper, opts)
    mask = res.masks[0]
    assert mask.max() > 0.99 and (mask == 0).mean() > 0.5
    outside = mask == 0
    assert np.array_equal(res.image[outside], img[outside])  # bit-identical outside the mask
    # inside, the identity swapper round-trips the crop: only interpolation blur remains
    diff = np.abs(res.image.astype(int) - img.astype(int))[mask > 0]
    assert diff.mean() < 3.0, diff.mean()
    # the mask is limited to the face: nothing beyond the face box (plus a margin) is touched
    ys, xs = np.nonzero(mask)
    assert xs.min() >= 240 - 60 - 10 and xs.max() <= 240 + 60 + 10
    assert ys.min() >= 160 - 60 - 25 and ys.max() <= 160 + 60 + 25


def test_colour_correction_keeps_an_unchanged_face_close(identity_swapper):
    img = _photo(seed=3)
    face = _face(200, 150, 110, emb_seed=1)
    res = fs.swap_faces(img, [face], [identity_swapper.source_identity(None, face)], [(0, 0)], identity_swapper,
                        fs.SwapOptions(colour_correction=True))
    inside = res.masks[0] > 0.5
    assert np.abs(res.image.astype(int) - img.astype(int))[inside].mean() < 4.0
    assert np.array_equal(res.image[res.masks[0] == 0], img[res.masks[0] == 0])


def test_colour_correction_moves_face_towards_target_light():
    rng = np.random.default_rng(0)
    target = np.clip(rng.normal(180, 10, (128, 128, 3)), 0, 255).astype(np.uint8)
    swapped = np.clip(rng.normal(60, 10, (128, 128, 3)), 0, 255).astype(np.uint8)
    mask = fp.face_mask(128, fp.arcface_template(128))
    out = pack_module("core.faces.colour").match_colour(swapped, target, mask)
    inside = mask > 0.5
    assert abs(out[inside].mean() - target[inside].mean()) < 5 < abs(swapped[inside].mean() - target[inside].mean())


def test_seam_mask_lies_around_the_swapped_faces(identity_swapper):
    img = _photo()
    faces = [_face(120, 150, 100, 1), _face(360, 150, 100, 2)]
    ids = [identity_swapper.source_identity(None, f) for f in faces]
    res = fs.swap_faces(img, faces, ids, [(0, 0), (1, 1)], identity_swapper, fs.SwapOptions(seam_width=6))
    seam = res.seam
    assert seam.shape == img.shape[:2]
    for mask, face in zip(res.masks, faces):
        cx, cy = face.center
        assert seam[int(cy), int(cx)] < 0.05  # not over the middle of the face
        edge = np.abs(mask - 0.5) < 0.15  # where the face mask crosses one half
        assert seam[edge].mean() > 0.5
    assert seam[:, 230:250].max() < 0.01  # between the two faces
    assert seam[300:, :].max() == 0 and seam[:, :40].max() == 0  # far from every face


# ------------------------------------------------------------------- mapping on a multi-face photo
class ColourSwapper:
    """A swap model that paints each source identity as one flat colour: shows where every source went."""

    crop_size = 128

    def crop_affine(self, kps):
        return fp.arcface_affine(kps, self.crop_size), fp.arcface_template(self.crop_size)

    def swap(self, crop, identity):
        return np.broadcast_to(np.asarray(identity, np.uint8), crop.shape).copy()


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def _paint_check(img, targets, pairs):
    model = ColourSwapper()
    ids = [np.array(c, np.float32) for c in COLOURS]
    res = fs.swap_faces(img, targets, ids, pairs, model, fs.SwapOptions(colour_correction=False))
    for s, t in pairs:
        cx, cy = targets[t].center
        cy = targets[t].kps[2][1]  # the nose: the middle of the mask
        px = res.image[int(cy), int(cx)].astype(int)
        assert np.abs(px - np.array(COLOURS[s])).max() <= 2, (s, t, px)
    untouched = [i for i in range(len(targets)) if i not in {t for _, t in pairs}]
    for t in untouched:
        cx, cy = targets[t].center
        assert np.array_equal(res.image[int(cy), int(cx)], img[int(cy), int(cx)])
    return res


def test_mapping_on_synthetic_group_photo():
    img = _photo(300, 600)
    targets = [_face(100, 150, 90), _face(250, 150, 90), _face(400, 150, 90), _face(520, 150, 70)]
    _paint_check(img, targets, fs.parse_mapping("0,1,2", "2,0,3", 4, 4))
    res = _paint_check(img, targets, fs.parse_mapping("1,0", "0,1", 2, 4))
    assert [f is targets[i] for f, i in zip(res.swapped, (0, 1))] == [True, True]


# the six faces of insightface's group photo t1.jpg (1280 x 886), left to right: centre x, centre y, size,
# measured by eye on the photo (OpenCV 5 no longer ships a cascade detector and the pack has no real
# detector weights here); landmarks are then placed as on a frontal face
T1_FACES = [(110, 330, 100), (322, 205, 90), (522, 330, 110), (800, 395, 110), (958, 125, 110), (1185, 345, 90)]
T1_WOMEN = (0, 1, 5)


def _t1_faces():
    import os

    import cv2
    import insightface

    path = os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg")
    bgr = cv2.imread(path)
    if bgr is None:
        pytest.skip("insightface's t1.jpg is not installed")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), [_face(x, y, s) for x, y, s in T1_FACES]


def test_mapping_and_order_on_t1_group_photo():
    img, faces = _t1_faces()
    # two sources onto the 3rd and 1st person (left to right); everyone else untouched
    _paint_check(img, faces, fs.parse_mapping("0,1", "2,0", 2, len(faces)))
    # a same-gender couple: the two women on the left swap places with two female sources, crossed
    w0, w1 = T1_WOMEN[0], T1_WOMEN[1]
    _paint_check(img, faces, fs.parse_mapping("0,1", f"{w1},{w0}", 2, len(faces)))
    # three sources onto the three women, in the order written
    _paint_check(img, faces, fs.parse_mapping("2,0,1", ",".join(map(str, T1_WOMEN)), 3, len(faces)))
    with pytest.raises(errors.I2PError, match="out of range"):
        fs.parse_mapping("0", str(len(faces)), 1, len(faces))


# --------------------------------------------------------------------------------------- the models
def test_inswapper_session_cached_and_provider_reported(test_models):
    path = test_models.get("inswapper_128")
    a = fs.InSwapper(str(path), "auto")
    b = fs.InSwapper(str(path), "auto")
    assert a.session is b.session
    assert a.provider == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in a.describe()
    assert a.emap.shape == (512, 512)


@pytest.mark.parametrize("model_id", ["inswapper_128", "inswapper_128-fp16"])
def test_inswapper_changes_only_the_face(test_models, model_id):
    model = fs.InSwapper(str(test_models.get(model_id)), "CPU")
    img = _photo()
    face = _face(240, 160, 120, emb_seed=5)
    res = fs.swap_faces(img, [face], [model.source_identity(None, face)], [(0, 0)], model, fs.SwapOptions())
    mask = res.masks[0]
    assert np.array_equal(res.image[mask == 0], img[mask == 0])
    assert np.abs(res.image.astype(int) - img.astype(int))[mask > 0.9].mean() > 2  # the face did change


def test_ghost_swaps_with_its_own_arcface(test_models):
    gs = pack_module("core.post.ghost")
    model = gs.load_ghost(test_models.get("ghost-unet-2blocks"), test_models.get("ghost-arcface"))
    assert model is gs.load_ghost(test_models.get("ghost-unet-2blocks"), test_models.get("ghost-arcface"))
    src_img, img = _photo(seed=1), _photo(seed=2)
    face = _face(240, 160, 120)
    ident = model.source_identity(src_img, face)
    assert ident.shape == (1, 512) and np.isfinite(ident).all()
    res = fs.swap_faces(img, [face], [ident], [(0, 0)], model, fs.SwapOptions())
    mask = res.masks[0]
    assert np.array_equal(res.image[mask == 0], img[mask == 0])
    assert np.abs(res.image.astype(int) - img.astype(int))[mask > 0.9].mean() > 2


def test_ghost_architecture_matches_published_key_layout():
    ghost = pack_module("models.ghost")
    sd = ghost.AEINet(base=32, id_dim=512, num_blocks=2).state_dict()
    # keys and shapes of the released G_unet_2blocks.pth (ai-forever/ghost, AEI_Net('unet', 2, c_id=512))
    assert tuple(sd["encoder.conv1.0.weight"].shape) == (32, 3, 4, 4)
    assert tuple(sd["encoder.deconv2.deconv.weight"].shape) == (2048, 512, 4, 4)
    assert tuple(sd["generator.up1.weight"].shape) == (512, 1024, 2, 2)
    assert tuple(sd["generator.AADBlk2.add_blocks.0.conv1.weight"].shape) == (1024, 2048, 1, 1)
    assert tuple(sd["generator.AADBlk4.last_add_block.2.weight"].shape) == (512, 1024, 3, 3)
    assert tuple(sd["generator.AADBlk8.add_blocks.5.weight"].shape) == (3, 64, 3, 3)
    assert "generator.AADBlk1.last_add_block.0.fc1.weight" not in sd
    assert sum(v.numel() for k, v in sd.items() if "num_batches" not in k) > 100_000_000
    arc = ghost.IResNet().state_dict()
    assert tuple(arc["fc.weight"].shape) == (512, 512 * 7 * 7)
    assert "layer3.29.conv2.weight" in arc and "features.running_var" in arc
    assert ghost.iresnet_config(arc)["layers"] == (3, 13, 30, 3)


# ------------------------------------------------------------------------------------------- the node
def _astronaut_faces(test_models):
    """The real portrait with the fake buffalo_l detector's couple on it (faces A, B; see
    tests/model_factory/insightface_models.py), detected and embedded by the pack's analyzer."""
    from skimage import data

    fa = pack_module("core.faces.analysis")
    test_models.group("buffalo_l")
    analyzer = fa.load_analyzer("buffalo_l", "CPU")
    img = np.ascontiguousarray(data.astronaut())
    chosen = fa.select_faces(analyzer.detect(img), "", "largest")
    assert len(chosen) == 2
    faces = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=chosen)], analyzer="test")
    return img, faces, analyzer


def _node():
    return pack_module("nodes.face_swap").I2PFaceSwap()


def _run(node, img, faces, src_img, src_faces, **kw):
    images = pack_module("core.images")
    args = dict(swap_model="inswapper_128.onnx", source_indices="0,1", target_indices="1,0", provider="CPU",
                resolution_boost="none", colour_correction=True, mask_erode=0.05, mask_blur=0.08, seam_width=0,
                content_safety="on", nsfw_threshold=0.8)
    args.update(kw)
    out = node.swap(images.from_rgb_uint8([img]), faces, images.from_rgb_uint8([src_img]), src_faces, **args)
    return out["result"]


def _changed_box(a, b):
    ys, xs = np.nonzero(np.abs(a.astype(int) - b.astype(int)).max(-1) > 0)
    return xs.min(), ys.min(), xs.max(), ys.max()


@pytest.mark.parametrize("swap_model", ["inswapper_128.onnx", "inswapper_128.fp16.onnx", "ghost/G_unet_2blocks.pth"])
def test_swap_node_couple_changes_only_the_two_faces(test_models, swap_model):
    for mid in ("inswapper_128", "inswapper_128-fp16", "ghost-unet-2blocks", "ghost-arcface", "nsfw-vit",
                "nsfw-vit-config"):
        test_models.get(mid)
    img, faces, _ = _astronaut_faces(test_models)
    image, seam, swapped, info = _run(_node(), img, faces, img, faces, swap_model=swap_model)
    out = (image[0].numpy() * 255).round().astype(np.uint8)
    assert out.shape == img.shape and tuple(seam.shape) == (1,) + img.shape[:2]
    diff = np.abs(out.astype(int) - img.astype(int)).max(-1) > 0
    boxes = [f.bbox for f in faces.sets[0].faces]
    inside_any = np.zeros_like(diff)
    for x1, y1, x2, y2 in boxes:
        pad = 0.25 * (x2 - x1)
        inside_any[int(max(y1 - pad, 0)):int(y2 + pad), int(max(x1 - pad, 0)):int(x2 + pad)] = True
        assert diff[int(y1):int(y2), int(x1):int(x2)].mean() > 0.2  # each face of the couple changed
    assert not diff[~inside_any].any()  # nothing else did
    assert [f.center for f in swapped.sets[0].faces] == [faces.sets[0].faces[1].center, faces.sets[0].faces[0].center]
    assert "source face 0 -> target face 1" in info and "licences:" in info
    assert "content safety P(nsfw)" in info and "vit-base-nsfw-detector/model.safetensors: Apache-2.0" in info
    if swap_model.startswith("ghost"):
        assert "Apache-2.0" in info and "commercial use allowed" in info
    else:
        assert "NON-COMMERCIAL" in info and "CPUExecutionProvider" in info


def test_swap_node_identity_swapper_keeps_the_photo(test_models, tmp_path):
    factory = pytest.importorskip("model_factory.swap_models")
    factory.build_inswapper(test_models.root / "insightface" / "inswapper_identity_test.onnx", identity=True)
    img, faces, _ = _astronaut_faces(test_models)
    image, seam, _, _ = _run(_node(), img, faces, img, faces, swap_model="inswapper_identity_test.onnx",
                             colour_correction=False, content_safety="off", target_indices="0,1")
    out = (image[0].numpy() * 255).round().astype(np.uint8)
    x1, y1, x2, y2 = _changed_box(out, img)
    fa, fb = faces.sets[0].faces
    lo = np.minimum(fa.bbox, fb.bbox)
    hi = np.maximum(fa.bbox, fb.bbox)
    assert x1 >= lo[0] - 40 and y1 >= lo[1] - 40 and x2 <= hi[2] + 40 and y2 <= hi[3] + 40
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 0.5
    assert seam.max() > 0.5


def test_swap_node_errors_are_clear(test_models):
    test_models.get("inswapper_128")
    img, faces, _ = _astronaut_faces(test_models)
    with pytest.raises(errors.I2PError) as info:
        _run(_node(), img, faces, img, faces, source_indices="0", target_indices="2", content_safety="off")
    assert info.value.input_name == "target_indices" and "out of range" in str(info.value)
    small = img[:256, :256]
    with pytest.raises(errors.I2PError) as info:
        _run(_node(), small, faces, img, faces, content_safety="off")
    assert info.value.input_name == "target_faces" and "512x512" in str(info.value)
    with pytest.raises(errors.I2PError) as info:
        _run(_node(), img, faces, img, faces, swap_model="inswapper_missing.onnx", content_safety="off")
    assert "models/insightface" in str(info.value)
