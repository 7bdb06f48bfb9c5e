"""IMAGE/MASK conversion, and the error a node gives for a malformed IMAGE or MASK."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from packload import pack_module

images = pack_module("core.images")
errors = pack_module("core.errors")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_any_channel_count_becomes_rgb(channels):
    out = images.to_rgb_uint8(torch.full((2, 5, 7, channels), 0.5))
    assert len(out) == 2 and out[0].shape == (5, 7, 3) and out[0].dtype == np.uint8
    assert int(out[0][0, 0, 0]) == 128


def test_image_input_names_node_and_input():
    with pytest.raises(errors.I2PError, match=r"\[I2P Test\] input 'source_image': expected 1, 3 or 4 channels"):
        images.image_input(torch.zeros(1, 4, 4, 2), "I2P Test", "source_image")
    with pytest.raises(errors.I2PError, match=r"input 'image': expected an IMAGE of shape"):
        images.image_input(torch.zeros(4), "I2P Test", "image")


def test_mask_input_names_node_input_and_fix():
    with pytest.raises(errors.I2PError, match=r"input 'hair_mask'.*Fix: use the hair mask\."):
        images.mask_input(torch.zeros(2, 2, 2, 2, 2), "I2P Test", "hair_mask", "use the hair mask.")
    assert images.mask_input(torch.ones(1, 3, 3), "I2P Test", "mask")[0].shape == (3, 3)


def test_face_box_mask_node_reports_a_malformed_image():
    node = pack_module("nodes.face_mask").I2PFaceBoxMask()
    spec = node.INPUT_TYPES()["required"]
    kwargs = {k: v[1].get("default") for k, v in spec.items() if k not in ("image", "faces")}
    ft = pack_module("core.faces.types")
    faces = ft.Faces([ft.FaceSet((4, 4), [])])
    with pytest.raises(errors.I2PError, match=r"\[I2P Face Box Mask\] input 'image'"):
        getattr(node, node.FUNCTION)(image=torch.zeros(1, 4, 4, 2), faces=faces, **kwargs)
