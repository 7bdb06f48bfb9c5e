"""Face masks: the pure mask operations, the parse → image mapping on controlled parse maps, and the
nodes end to end with the real-layout (random-weight) BiSeNet.

A random BiSeNet labels pixels arbitrarily, so every property about *which* pixels are in the mask is
tested with a synthetic parse function (a drawn face in the aligned 512 crop); the random model is used
for loading, shapes and the properties that must hold whatever the parse is.
"""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module

SKIN, L_EYE, R_EYE, NOSE, NECK, HAIR = 1, 4, 5, 10, 14, 17


@pytest.fixture(scope="module")
def masks():
    return pack_module("core.masks")


@pytest.fixture(scope="module")
def fp():
    return pack_module("core.faces.parsing")


@pytest.fixture(scope="module")
def analyzer(test_models):
    test_models.group("buffalo_l")
    return pack_module("core.faces.analysis").load_analyzer("buffalo_l", "CPU")


@pytest.fixture(scope="module")
def bisenet(test_models):
    return test_models.get("bisenet-face-parsing")


def astronaut():
    import skimage.data

    return skimage.data.astronaut()


def as_image(*arrays):
    import torch

    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0)


def drawn_parse(crop: np.ndarray, eye_holes: bool = False) -> np.ndarray:
    """A face drawn in template coordinates: skin oval, eyes, nose, hair cap above, neck below, and a
    neighbour's skin blob in the corner that is not connected to this face."""
    import cv2

    labels = np.zeros((512, 512), np.uint8)
    cv2.ellipse(labels, (256, 200), (175, 160), 0, 0, 360, HAIR, -1)
    cv2.rectangle(labels, (205, 400), (307, 511), NECK, -1)
    cv2.ellipse(labels, (256, 300), (115, 150), 0, 0, 360, SKIN, -1)
    for (x, y), cls in (((193, 240), L_EYE), ((319, 240), R_EYE)):
        cv2.circle(labels, (x, y), 14, 0 if eye_holes else cls, -1)
    cv2.circle(labels, (256, 314), 12, NOSE, -1)
    cv2.circle(labels, (30, 480), 25, SKIN, -1)  # the neighbour
    return labels


def faces_of(analyzer, img, indices=""):
    fa = pack_module("core.faces.analysis")
    return fa.select_faces(analyzer.detect(img), indices=indices)


# ------------------------------------------------------------------------------------ pure masks
def square(n=101, a=30, b=70):
    m = np.zeros((n, n), bool)
    m[a:b, a:b] = True
    return m


def test_grow_is_exact_and_monotone(masks):
    dot = np.zeros((81, 81), bool)
    dot[40, 40] = True
    disk = masks.grow(dot, 20)
    assert abs(disk.sum() - np.pi * 400) < 0.03 * np.pi * 400
    assert disk[40, 60] and not disk[40, 61] and disk[26, 26] and not disk[25, 25]  # 19.8 and 21.2 px away
    m = square()
    prev = m
    for r in (1, 3, 7.5, 20, 60):
        g = masks.grow(m, r)
        assert (g >= prev).all() and g.sum() > prev.sum()
        prev = g
    assert (masks.grow(m, -5) <= m).all() and masks.grow(m, -5).sum() == 30 * 30
    assert not masks.grow(m, -25).any()
    assert (masks.grow(m, 0) == m).all()


def test_feather_is_soft_only_near_the_edge(masks):
    m = square()
    for width in (2, 6, 15):
        f = masks.feather(m, width)
        assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
        soft = (f > 0) & (f < 1)
        assert soft.any()
        near = masks.grow(m, width / 2 + 1) & ~masks.grow(m, -(width / 2 + 1))
        assert not (soft & ~near).any()
        assert (f[masks.grow(m, -(width / 2 + 1))] == 1).all()
        assert (f[~masks.grow(m, width / 2 + 1)] == 0).all()
        assert abs(f.sum() - m.sum()) < 0.05 * m.sum()  # centred on the edge: area is kept
    assert (masks.feather(m, 0) == m).all()
    edge = np.zeros((40, 40), bool)
    edge[:, :20] = True  # touching the image border: the border is not an edge
    assert (masks.feather(edge, 10)[:, 0] == 1).all()


def test_fill_holes_and_keep_connected(masks):
    ring = square() & ~square(a=45, b=55)
    assert masks.fill_holes(ring).sum() == 40 * 40
    open_ring = ring.copy()
    open_ring[48:52, 30:46] = False  # a channel to the outside: not a hole
    assert masks.fill_holes(open_ring).sum() == open_ring.sum()
    two = square(a=10, b=20) | square(a=60, b=90)
    seed = np.zeros_like(two)
    seed[15, 15] = True
    assert masks.keep_connected(two, seed).sum() == 100


def test_box_and_ellipse_masks(masks):
    shape, box = (200, 300), (100, 50, 180, 150)
    b0, b1 = masks.box_mask(shape, box), masks.box_mask(shape, box, 20)
    assert b0.sum() == 80 * 100 and (b1 >= b0).all() and b1.sum() == 120 * 140
    e0, e1, em = (masks.ellipse_mask(shape, box, g) for g in (0, 20, -10))
    assert (e0 <= b0).all() and (e1 >= e0).all() and (em <= e0).all()
    assert abs(e0.sum() - np.pi * 40 * 50) < 0.02 * np.pi * 40 * 50
    assert not masks.ellipse_mask(shape, box, -60).any()


# --------------------------------------------------------------- parse → image (controlled parses)
def test_alignment_maps_the_template_onto_the_landmarks(fp, analyzer):
    img = astronaut()
    face = faces_of(analyzer, img)[0]
    m = fp.align_matrix(face.kps)
    mapped = np.hstack([face.kps, np.ones((5, 1))]) @ m.T
    assert np.abs(mapped - pack_module("core.faces.align").ffhq_template(512)).max() < 12
    crop = fp.crop_face(img, m)
    assert crop.shape == (512, 512, 3) and crop.std() > 10  # a picture, not the black border
    back = pack_module("core.faces.align").warp_back(np.ones((512, 512), np.float32), m, img.shape[:2]) > 0.5
    x1, y1, x2, y2 = face.bbox
    assert back[int(y1):int(y2), int(x1):int(x2)].all()  # the crop covers the whole face box
    assert back.mean() < 0.5  # and only its neighbourhood


def test_drawn_parse_lands_on_her_face(fp, analyzer):
    img = astronaut()
    face = faces_of(analyzer, img, "0")[0]
    res = fp.image_masks(img, [face], drawn_parse, fp.MaskOptions(hair=False, neck=False))
    hard = res.combined > 0.5
    x1, y1, x2, y2 = face.bbox
    cx, cy = face.center
    assert hard[int(cy), int(cx)]
    ys, xs = np.nonzero(hard)
    assert x1 - 15 < xs.mean() < x2 + 15 and y1 < ys.mean() < y2 + 30
    assert res.hair.sum() > 0 and not (res.hair.astype(bool) & hard).all()
    # the neighbour's blob in the crop's corner was dropped: nothing far down-left of the face
    assert not hard[int(y2) + 40:, : int(x1) - 20].any()
    assert res.preview.shape == img.shape and res.preview.dtype == np.uint8


def test_mask_controls_are_monotone(fp, analyzer):
    img = astronaut()
    faces = faces_of(analyzer, img)  # both faces of the couple
    opts = fp.MaskOptions(expand=0.0, padding=0, blur=0, fill_holes=True, ears=False, glasses=False)

    def mask(**kw):
        return fp.image_masks(img, faces, drawn_parse, fp.MaskOptions(**{**opts.__dict__, **kw})).combined

    base = mask()
    assert set(np.unique(base)) <= {0.0, 1.0}
    hair, neck = mask(hair=True), mask(neck=True)
    assert (hair >= base).all() and hair.sum() > base.sum()
    assert (neck >= base).all() and neck.sum() > base.sum()
    prev = base
    for e in (0.05, 0.1, 0.3):
        cur = mask(expand=e)
        assert (cur >= prev).all() and cur.sum() > prev.sum()
        prev = cur
    shrunk, grown = mask(padding=-6), mask(padding=6)
    assert (shrunk <= base).all() and shrunk.sum() < base.sum()
    assert (grown >= base).all() and grown.sum() > base.sum()
    blurred = mask(blur=16)
    soft = (blurred > 0) & (blurred < 1)
    hard = base > 0.5
    pack_masks = pack_module("core.masks")
    near_edge = pack_masks.grow(hard, 9) & ~pack_masks.grow(hard, -9)
    assert soft.any() and not (soft & ~near_edge).any()
    # eyes parsed as background are holes: filled only with fill_holes
    holes = fp.image_masks(img, faces, lambda c: drawn_parse(c, eye_holes=True),
                           fp.MaskOptions(**{**opts.__dict__, "fill_holes": False})).combined
    filled = fp.image_masks(img, faces, lambda c: drawn_parse(c, eye_holes=True), opts).combined
    assert (filled >= holes).all() and filled.sum() > holes.sum()


def test_nothing_outside_the_selected_faces_neighbourhood(fp, analyzer):
    img = astronaut()
    every = faces_of(analyzer, img)
    selected = [every[0]]  # only the largest face
    opts = fp.MaskOptions(hair=True, neck=True, expand=0.2, padding=10, blur=20)
    res = fp.image_masks(img, selected, lambda c: np.full((512, 512), SKIN, np.uint8), opts)
    footprint = pack_module("core.faces.align").warp_back(np.ones((512, 512), np.float32),
                                                          fp.align_matrix(selected[0].kps), img.shape[:2]) > 0
    reach = 0.2 * selected[0].size + 10 + 20 / 2 + 2
    allowed = pack_module("core.masks").grow(footprint, reach)
    assert res.combined[~allowed].max() == 0
    assert res.hair.sum() == 0  # all-skin parse has no hair
    other = every[1]
    x1, y1, x2, y2 = (int(v) for v in other.bbox)
    assert res.combined[y1:y2, x1:x2].max() == 0  # the unselected face stays out


def test_per_face_masks_partition_the_combined_mask(fp, analyzer):
    img = astronaut()
    faces = faces_of(analyzer, img)
    res = fp.image_masks(img, faces, drawn_parse, fp.MaskOptions(blur=0))
    assert len(res.per_face) == 2
    union = np.maximum(res.per_face[0], res.per_face[1])
    np.testing.assert_array_equal(union, res.combined)
    assert res.per_face[0].sum() > res.per_face[1].sum()  # the larger face first (selection order)


# ---------------------------------------------------------------------------------- BiSeNet loading
def test_bisenet_loads_both_key_layouts_and_rejects_others(bisenet, tmp_path):
    import torch

    from model_factory.bisenet_models import build_bisenet

    bn = pack_module("models.bisenet")
    errors = pack_module("core.errors")
    managed = bn.load_bisenet(bisenet, device="cpu")
    out = managed.load()(torch.zeros(1, 3, 64, 64))
    assert out[0].shape == (1, 19, 64, 64)
    # BatchNorm folded into the convolutions: same output as facexlib's own module with the file loaded
    from facexlib.parsing.bisenet import BiSeNet

    ref = BiSeNet(num_class=19)
    ref.load_state_dict(torch.load(bisenet, map_location="cpu", weights_only=True), strict=False)
    ref.eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(managed.module(x)[0], ref(x)[0], atol=1e-3, rtol=1e-3)
    wrapped = tmp_path / "79999_iter.pth"
    build_bisenet(wrapped, prefix="module.")  # saved from DataParallel
    net2 = bn.load_bisenet(wrapped, device="cpu").load()
    sd1, sd2 = managed.module.state_dict(), net2.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1 if not k.endswith("num_batches_tracked"))
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(errors.I2PError, match="not a 19-class BiSeNet"):
        bn.load_bisenet(bad, device="cpu")


def test_random_bisenet_parse_shape(fp, bisenet):
    parser = fp.load_parser(bisenet, device="cpu")
    crop = np.ascontiguousarray(astronaut()[::1, ::1])
    labels = parser(crop)
    assert labels.shape == (512, 512) and labels.dtype == np.uint8 and labels.max() < 19
    assert parser(crop) is labels  # the recent-parse cache answers a repeat


# ------------------------------------------------------------------------------------------- nodes
@pytest.fixture(scope="module")
def nodes(bisenet, analyzer):
    return pack_module("nodes.face_mask"), pack_module("nodes.face_analysis")


def detect(nodes, image, **kw):
    args = dict(order="largest", indices="", gender="any", min_size=0, threshold=0.5, det_size=640,
                if_no_face="error")
    args.update(kw)
    return nodes[1].I2PDetectFaces().detect(pack_module("core.faces.analysis").load_analyzer("buffalo_l", "CPU"),
                                            image, **args)[0]


def parse_node(nodes, image, faces, **kw):
    args = dict(parsing_model="parsing_bisenet.pth", include_hair=False, include_neck=False, include_ears=True,
                include_glasses=True, include_hat=False, expand=0.05, padding=0, blur=12, fill_holes=True,
                output="combined")
    args.update(kw)
    return nodes[0].I2PFaceParsingMask().make_mask(image, faces, **args)


def test_parsing_node_batch_outputs(nodes):
    img = astronaut()
    image = as_image(img, img[:, ::-1].copy(), img)
    faces = detect(nodes, image)
    mask, preview, hair = parse_node(nodes, image, faces)
    assert tuple(mask.shape) == (3, 512, 512) and tuple(preview.shape) == (3, 512, 512, 3)
    assert tuple(hair.shape) == (3, 512, 512)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1 and float(mask.max()) > 0
    per_face = parse_node(nodes, image, faces, output="per face")[0]
    assert tuple(per_face.shape) == (6, 512, 512)
    np.testing.assert_allclose(per_face[0:2].max(0)[0].numpy(), mask[0].numpy(), atol=1e-6)
    with_hair = parse_node(nodes, image, faces, include_hair=True, blur=0)[0]
    without = parse_node(nodes, image, faces, include_hair=False, blur=0)[0]
    assert bool((with_hair >= without).all())


def test_parsing_node_any_image(nodes):
    import cv2
    import torch

    base = astronaut().astype(np.float32) / 255.0
    odd = cv2.resize(base, (517, 333))
    rgba = torch.from_numpy(np.concatenate([odd, np.ones_like(odd[..., :1])], -1)[None])
    gray = torch.from_numpy(odd.mean(-1, keepdims=True)[None])
    tiny = torch.from_numpy(cv2.resize(base, (24, 20))[None])
    large = torch.from_numpy(cv2.resize(base, (3001, 2203))[None])
    for image in (rgba, gray, tiny, large):
        faces = detect(nodes, image, indices="0")
        mask, preview, hair = parse_node(nodes, image, faces, expand=0.1)
        h, w = image.shape[1:3]
        assert tuple(mask.shape) == (1, h, w) and tuple(preview.shape) == (1, h, w, 3)
        assert float(mask.max()) <= 1 and float(mask.min()) >= 0


def test_parsing_node_pass_through_and_resized_faces(nodes):
    import cv2

    img = astronaut()
    black = np.zeros_like(img)
    faces = detect(nodes, as_image(img, black), if_no_face="pass through")
    mask, preview, _ = parse_node(nodes, as_image(img, black), faces)
    assert float(mask[1].max()) == 0 and float(mask[0].max()) > 0
    np.testing.assert_allclose(preview[1].numpy(), 0)
    # faces found on a half-size copy are scaled to the full image
    half = detect(nodes, as_image(cv2.resize(img, (256, 256))))
    full = detect(nodes, as_image(img))
    m_half = parse_node(nodes, as_image(img), half, blur=0)[0]
    m_full = parse_node(nodes, as_image(img), full, blur=0)[0]
    overlap = float((m_half * m_full).sum() / max(float(m_full.sum()), 1.0))
    assert overlap > 0.8
    errors = pack_module("core.errors")
    with pytest.raises(errors.I2PError, match="detected on a 512x512 image"):
        parse_node(nodes, as_image(cv2.resize(img, (600, 300))), full)


def test_parsing_node_missing_model_names_download(nodes, tmp_path, monkeypatch):
    model_errors = pack_module("core.model_errors")
    faces = detect(nodes, as_image(astronaut()))
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    with pytest.raises(model_errors.ModelFileMissing, match="bisenet-face-parsing"):
        parse_node(nodes, as_image(astronaut()), faces)


def test_box_mask_node(nodes):
    img = astronaut()
    image = as_image(img, img)
    faces = detect(nodes, image)
    box = nodes[0].I2PFaceBoxMask()
    (m,) = box.make_mask(image, faces, "box", 0.0, 0, 0, "combined")
    (e,) = box.make_mask(image, faces, "ellipse", 0.0, 0, 0, "combined")
    (big,) = box.make_mask(image, faces, "ellipse", 0.3, 0, 0, "combined")
    (soft,) = box.make_mask(image, faces, "ellipse", 0.3, 0, 16, "per face")
    assert tuple(m.shape) == (2, 512, 512) and tuple(soft.shape) == (4, 512, 512)
    assert bool((e <= m).all()) and bool((big >= e).all())
    f = faces.sets[0].faces[0]
    x1, y1, x2, y2 = (int(round(v)) for v in f.bbox)
    assert float(m[0, y1 + 2:y2 - 2, x1 + 2:x2 - 2].min()) == 1.0
    outside = np.ones((512, 512), bool)
    for face in faces.sets[0].faces:
        x1, y1, x2, y2 = face.bbox
        g = 0.3 * face.size + 8 + 2
        outside[int(max(0, y1 - g)):int(y2 + g) + 1, int(max(0, x1 - g)):int(x2 + g) + 1] = False
    assert float(soft[0:2].max(0)[0].numpy()[outside].max()) == 0
    s = soft[0].numpy()
    assert ((s > 0) & (s < 1)).any()
