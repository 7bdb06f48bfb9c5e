"""Face restore with the full-size GFPGAN v1.4 test file (spandrel's fixed config): alignment, strength,
face-only changes, the node's 'only swapped faces', and the swap node's resolution boost."""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module

fr = pack_module("core.post.restore")
fp = pack_module("core.faces.align")
ft = pack_module("core.faces.types")
errors = pack_module("core.errors")
images = pack_module("core.images")


def _face(cx, cy, s):
    kps = np.array([[cx - 0.18 * s, cy - 0.1 * s], [cx + 0.18 * s, cy - 0.1 * s], [cx, cy + 0.05 * s],
                    [cx - 0.15 * s, cy + 0.25 * s], [cx + 0.15 * s, cy + 0.25 * s]], np.float32)
    return ft.Face(bbox=np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], np.float32), kps=kps,
                   det_score=0.9, embedding=np.ones(512, np.float32) / np.sqrt(512))


def _photo(h=300, w=420, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([50 + 150 * xx / w, 80 + 100 * yy / h, 120 + 0 * xx], -1) + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def restorer(test_models):
    return fr.load_restorer(test_models.get("gfpgan-v1.4"))


def test_gfpgan_loads_through_spandrel_and_is_cached(restorer, test_models):
    assert restorer.arch == "GFPGAN"
    assert fr.load_restorer(test_models.get("gfpgan-v1.4")) is restorer
    assert "GFPGAN" in restorer.describe()


def test_precision_choice(test_models):
    fp32 = fr.load_restorer(test_models.get("gfpgan-v1.4"), precision="fp32")
    assert "fp32" in fp32.describe() and next(fp32.managed.module.parameters()).dtype.is_floating_point
    with pytest.raises(errors.I2PError) as info:
        fr.load_restorer(test_models.get("gfpgan-v1.4"), precision="fp8")
    assert info.value.input_name == "precision"


def test_ffhq_alignment_puts_landmarks_on_the_template():
    face = _face(200, 150, 120)
    m = fp.ffhq_affine(face.kps, 512)
    mapped = np.c_[face.kps, np.ones(5)] @ m.T
    # a similarity transform cannot fit 5 arbitrary points exactly; the eyes and mouth land within a few px
    assert np.abs(mapped - fp.ffhq_template(512)).max() < 25


def test_strength_zero_returns_the_input_exactly(restorer):
    img = _photo()
    res = fr.restore_faces(img, [_face(200, 150, 120)], restorer, strength=0.0)
    assert np.array_equal(res.image, img) and res.mask.max() == 0


def test_strength_one_changes_only_the_face_region(restorer):
    img = _photo(seed=1)
    face = _face(200, 150, 120)
    res = fr.restore_faces(img, [face], restorer, strength=1.0)
    changed = np.abs(res.image.astype(int) - img.astype(int)).max(-1) > 0
    assert changed.any()
    assert not changed[res.mask == 0].any()  # outside the soft face mask: bit-identical
    ys, xs = np.nonzero(res.mask)
    x1, y1, x2, y2 = face.bbox
    assert xs.min() >= x1 - 20 and xs.max() <= x2 + 20 and ys.min() >= y1 - 40 and ys.max() <= y2 + 20
    # the face itself was restored (random weights: a visible change over most of the mask core)
    assert changed[res.mask > 0.9].mean() > 0.5


def test_restore_input_is_contiguous_nchw(restorer):
    """ComfyUI's ImageUpscaleWithModel hands GFPGAN a channels-last view and fails; ours must not."""
    crop = np.ascontiguousarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)[:, ::-1])
    out = restorer.restore_crop(crop[:, ::-1])  # a negative-stride view on purpose
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8


def test_not_a_restore_model_is_a_clear_error(tmp_path):
    import torch

    bad = tmp_path / "not_a_model.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(errors.I2PError) as info:
        fr.load_restorer(bad)
    assert info.value.input_name == "restore_model"


def test_restore_node_only_swapped_faces(test_models, restorer):
    node = pack_module("nodes.face_restore").I2PFaceRestore()
    img = _photo(300, 560, seed=2)
    a, b = _face(140, 150, 110), _face(420, 150, 110)
    faces = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=[a, b])])
    swapped = ft.Faces(sets=[ft.FaceSet(image_size=img.shape[:2], faces=[b])])
    out = node.restore(images.from_rgb_uint8([img]), faces, "GFPGANv1.4.pth", 1.0, "only swapped faces",
                       swapped_faces=swapped)["result"]
    res = (out[0][0].numpy() * 255).round().astype(np.uint8)
    changed = np.abs(res.astype(int) - img.astype(int)).max(-1) > 0
    assert not changed[:, :280].any() and changed[:, 280:].any()  # face a untouched, face b restored
    assert "Apache-2.0" in out[2]
    with pytest.raises(errors.I2PError) as info:
        node.restore(images.from_rgb_uint8([img]), faces, "GFPGANv1.4.pth", 1.0, "only swapped faces")
    assert info.value.input_name == "swapped_faces"
    same = node.restore(images.from_rgb_uint8([img]), faces, "GFPGANv1.4.pth", 0.0, "all selected faces")["result"]
    assert np.array_equal((same[0][0].numpy() * 255).round().astype(np.uint8), img)


def test_swap_resolution_boost_restores_before_pasting(test_models, restorer):
    fs = pack_module("core.post.swap")
    model = fs.InSwapper(str(test_models.get("inswapper_128")), "CPU")
    img = _photo(seed=3)
    face = _face(200, 150, 120)
    ident = model.source_identity(None, face)
    plain = fs.swap_faces(img, [face], [ident], [(0, 0)], model, fs.SwapOptions())
    boosted = fs.swap_faces(img, [face], [ident], [(0, 0)], model, fs.SwapOptions(boost=restorer))
    mask = boosted.masks[0]
    assert np.array_equal(boosted.image[mask == 0], img[mask == 0])
    assert not np.array_equal(boosted.image, plain.image)
    assert boosted.seam.max() > 0.5
