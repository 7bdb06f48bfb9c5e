"""Conversions between ComfyUI's IMAGE/MASK tensors and the numpy arrays the stage code works on.

ComfyUI IMAGE: float tensor (B, H, W, C) in [0, 1], C is 3 but may be 1 or 4 when a node upstream
kept grayscale or alpha. MASK: float tensor (B, H, W) in [0, 1]. Stage code works on uint8 RGB
(H, W, 3) numpy arrays and float32 (H, W) masks.
"""
from __future__ import annotations

import numpy as np


def to_rgb_uint8(image) -> list[np.ndarray]:
    """IMAGE tensor or array (B,H,W,C) / (H,W,C) → list of contiguous uint8 RGB arrays.

    Grayscale is repeated to three channels and alpha is dropped (composited on nothing: the
    reference photo's colour is what matters, not its transparency).
    """
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected an IMAGE of shape (B, H, W, C), got {tuple(arr.shape)}")
    c = arr.shape[-1]
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif c == 4:
        arr = arr[..., :3]
    elif c != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {c}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(a) for a in arr]


def from_rgb_uint8(images: list[np.ndarray]):
    """List of uint8 RGB arrays of one size → IMAGE tensor (B,H,W,3) float32 on the CPU."""
    import torch

    batch = np.stack([np.asarray(a, dtype=np.uint8) for a in images]).astype(np.float32) / 255.0
    return torch.from_numpy(batch)


def to_mask_arrays(mask) -> list[np.ndarray]:
    """MASK tensor (B,H,W) / (H,W) → list of float32 arrays in [0, 1]."""
    arr = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"expected a MASK of shape (B, H, W), got {tuple(arr.shape)}")
    return [np.clip(a.astype(np.float32), 0.0, 1.0) for a in arr]


def from_mask_arrays(masks: list[np.ndarray]):
    """List of float (H,W) arrays → MASK tensor (B,H,W) float32 on the CPU."""
    import torch

    return torch.from_numpy(np.stack([np.asarray(m, dtype=np.float32) for m in masks]))


def image_input(image, node: str, input_name: str) -> list[np.ndarray]:
    """:func:`to_rgb_uint8` for a node's IMAGE input: a malformed value becomes an error that names
    the node and the input instead of numpy's shape complaint."""
    from .errors import I2PError

    try:
        return to_rgb_uint8(image)
    except ValueError as exc:
        raise I2PError(node, input_name, f"{exc}.", "connect an IMAGE (B, H, W, C).") from None


def mask_input(mask, node: str, input_name: str, fix: str = "connect a MASK (B, H, W).") -> list[np.ndarray]:
    """:func:`to_mask_arrays` for a node's MASK input, with the same kind of error."""
    from .errors import I2PError

    try:
        return to_mask_arrays(mask)
    except ValueError as exc:
        raise I2PError(node, input_name, f"{exc}.", fix) from None
