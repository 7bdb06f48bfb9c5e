"""Crop planning, feathered blend and stitch: placement, bit-exact background, no seams."""
from __future__ import annotations

import numpy as np
import pytest

from packload import pack_module

ic = pack_module("core.inpaint.crop")


def disc(h, w, cx, cy, r):
    ys, xs = np.mgrid[0:h, 0:w]
    return ((xs - cx) ** 2 + (ys - cy) ** 2 <= r * r).astype(np.float32)


@pytest.mark.parametrize("hw,centre", [((480, 640), (320, 240)), ((480, 640), (12, 20)), ((480, 640), (630, 470)),
                                       ((300, 900), (880, 150)), ((900, 300), (150, 10))])
def test_plan_crop_contains_mask_and_band_and_stays_inside(hw, centre):
    h, w = hw
    mask = disc(h, w, centre[0], centre[1], 40)
    box = ic.mask_bbox(mask)
    blend = 12
    region = ic.plan_crop(box, hw, face_size=80, context=2.0, blend=blend, target_size=512)
    assert 0 <= region.x0 < region.x1 <= w and 0 <= region.y0 < region.y1 <= h
    # the mask plus its feather band lies inside the crop wherever the image goes on
    assert region.x0 <= max(0, box[0] - blend) and region.x1 >= min(w, box[2] + blend)
    assert region.y0 <= max(0, box[1] - blend) and region.y1 >= min(h, box[3] + blend)
    # a face at the border keeps a full-size (shifted, not clipped) square crop
    assert region.width == region.height == 160
    assert region.sample_w % 8 == 0 and region.sample_h % 8 == 0
    assert region.sample_w == 512


def test_plan_crop_never_downscales_and_caps_memory():
    big = ic.plan_crop((100, 100, 1500, 1500), (2000, 2000), face_size=1400, context=1.2, blend=8, target_size=1024)
    assert big.sample_w >= big.width  # a face larger than the target keeps its resolution
    assert not big.capped
    tiny = ic.plan_crop((0, 0, 3800, 3800), (4000, 4000), face_size=3800, context=1.0, blend=8, target_size=512)
    assert tiny.capped and tiny.sample_w * tiny.sample_h <= 1024 * 1024 * 1.02
    assert tiny.sample_w % 8 == 0


def test_blend_alpha_is_zero_beyond_band_and_one_on_core():
    mask = disc(200, 300, 150, 100, 30)
    alpha = ic.blend_alpha(mask, 10)
    assert np.all(alpha[mask >= 0.5] == 1.0)
    import cv2

    dist = cv2.distanceTransform((mask < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    assert np.all(alpha[dist >= 10] == 0.0)
    band = (dist > 0) & (dist < 10)
    assert np.all((alpha[band] > 0) & (alpha[band] < 1))
    assert np.all(ic.blend_alpha(mask, 0) == mask)


@pytest.mark.parametrize("hw", [(240, 400), (400, 240), (257, 333)])
def test_stitch_is_bit_identical_outside_the_blend_zone(hw):
    rng = np.random.default_rng(0)
    h, w = hw
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = disc(h, w, w - 20, 30, 35)  # touching two borders
    alpha = ic.blend_alpha(mask, 8)
    region = ic.plan_crop(ic.mask_bbox(mask), hw, 70, 2.0, 8, 256)
    generated = rng.random((region.sample_h, region.sample_w, 3), dtype=np.float32)
    out = ic.stitch(image, generated, alpha, region)
    assert out.dtype == np.uint8 and out.shape == image.shape
    outside = alpha == 0
    assert np.array_equal(out[outside], image[outside])
    assert (out[mask >= 0.5] != image[mask >= 0.5]).any()


def test_flat_image_round_trip_has_no_seam():
    """Crop → upscale → (identity) → downscale → stitch of a flat image changes nothing at all."""
    image = np.full((300, 420, 3), (120, 130, 140), np.uint8)
    mask = disc(300, 420, 200, 150, 50)
    alpha = ic.blend_alpha(mask, 16)
    region = ic.plan_crop(ic.mask_bbox(mask), (300, 420), 100, 2.0, 16, 1024)
    pixels, weight = ic.crop_for_sampling(image, alpha, region)
    assert pixels.shape == (region.sample_h, region.sample_w, 3) and weight.shape == pixels.shape[:2]
    out = ic.stitch(image, pixels, alpha, region)
    assert np.array_equal(out, image)


def test_new_flat_colour_fades_in_without_a_step():
    """A flat image whose face region becomes another flat colour: the change is spread over the
    feather band, so no neighbouring pixels differ by more than the band's slope allows."""
    image = np.full((240, 320, 3), 100, np.uint8)
    mask = disc(240, 320, 160, 120, 40)
    blend = 20
    alpha = ic.blend_alpha(mask, blend)
    region = ic.plan_crop(ic.mask_bbox(mask), (240, 320), 80, 2.0, blend, 512)
    generated = np.full((region.sample_h, region.sample_w, 3), 200 / 255.0, np.float32)
    out = ic.stitch(image, generated, alpha, region).astype(int)
    assert out[120, 160, 0] == 200 and out[0, 0, 0] == 100
    step = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert step <= int(np.ceil(100 * 1.5 / blend)) + 2  # smoothstep's steepest slope is 1.5 / width


def test_split_mask_by_faces_gives_each_face_its_own_part():
    h, w = 200, 400
    mask = np.maximum(disc(h, w, 100, 100, 40), disc(h, w, 300, 100, 40))
    parts = ic.split_mask_by_faces(mask, [(100, 100), (300, 100)], [80, 80])
    assert len(parts) == 2
    assert np.array_equal(parts[0] + parts[1], mask)
    assert parts[0][:, 200:].sum() == 0 and parts[1][:, :200].sum() == 0
    assert ic.mask_bbox(np.zeros((4, 4))) is None
