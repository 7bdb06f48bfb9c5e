"""Colour transfer inside a mask (Reinhard-style mean/std matching in CIE Lab).

A face warped in from another photo carries that photo's white balance and exposure; matched in Lab,
lightness and the two colour axes are corrected independently, so the pasted skin takes the target's
tone without its detail being flattened. Statistics are taken and applied only where the mask is set.
"""
from __future__ import annotations

import numpy as np


def _lab(rgb_uint8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb_uint8.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def lab_stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and std of each Lab channel where ``mask`` > 0."""
    lab = _lab(image).reshape(-1, 3)
    w = np.clip(mask.astype(np.float32).reshape(-1), 0, 1)
    total = float(w.sum())
    if total <= 0:
        raise ValueError("colour statistics need a non-empty mask")
    mean = (lab * w[:, None]).sum(0) / total
    var = (((lab - mean) ** 2) * w[:, None]).sum(0) / total
    return mean, np.sqrt(var)


def match_color(source: np.ndarray, source_mask: np.ndarray, target: np.ndarray, target_mask: np.ndarray,
                strength: float = 1.0) -> np.ndarray:
    """``source`` (uint8 RGB) recoloured so that its Lab mean/std inside ``source_mask`` equal
    ``target``'s inside ``target_mask``; ``strength`` in [0, 1] interpolates the statistics. Pixels
    outside ``source_mask`` are returned unchanged."""
    src_mean, src_std = lab_stats(source, source_mask)
    dst_mean, dst_std = lab_stats(target, target_mask)
    s = float(np.clip(strength, 0.0, 1.0))
    want_mean = src_mean + s * (dst_mean - src_mean)
    want_std = src_std + s * (dst_std - src_std)
    gain = want_std / np.maximum(src_std, 1e-3)
    lab = _lab(source)
    moved = (lab - src_mean) * gain + want_mean
    moved[..., 0] = np.clip(moved[..., 0], 0.0, 100.0)
    out = source.copy()
    zone = source_mask > 0
    out[zone] = _rgb(moved)[zone]
    return out
