"""The one colour transfer of the pack: Reinhard-style mean/std matching in CIE Lab inside a mask.

A face warped in from another photo (pre-paste) or made by a swap model carries another light:
white balance and exposure. Matched in Lab, lightness and the two colour axes are corrected
independently, so the face takes the target's tone without its detail being flattened. Statistics
are weighted by the (soft) masks; only pixels where the mask is above zero change.
"""
from __future__ import annotations

import numpy as np

MAX_GAIN = 2.0  # spread ratios are clipped to [1/MAX_GAIN, MAX_GAIN]: no noise blown up on flat faces


def _lab(rgb_pixels: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB pixels -> (N, 3) float32 Lab (L in 0..100)."""
    import cv2

    px = np.ascontiguousarray(rgb_pixels, np.uint8).reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(px, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def _rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    rgb = cv2.cvtColor(lab.astype(np.float32).reshape(-1, 1, 3), cv2.COLOR_LAB2RGB).reshape(-1, 3)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, Lab pixels) over the pixels where ``mask`` > 0, weighted by the mask (only those
    pixels are converted: a face mask covers a fraction of its crop)."""
    w = np.asarray(mask, np.float32)
    zone = w > 0
    ww = np.minimum(w[zone], 1.0)
    total = float(ww.sum())
    if total <= 0:
        raise ValueError("colour statistics need a non-empty mask")
    lab = _lab(image[zone])
    mean = (ww @ lab) / total
    var = (ww @ np.square(lab - mean)) / total
    return mean, np.sqrt(var), lab


def _weight(mask: np.ndarray) -> float:
    w = np.asarray(mask, np.float32)
    return float(np.minimum(w[w > 0], 1.0).sum())


def lab_stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask-weighted mean and std of each Lab channel (L in 0..100) of a uint8 RGB image."""
    return _stats(image, mask)[:2]


def match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray, target_mask: np.ndarray | None = None,
                 strength: float = 1.0) -> np.ndarray:
    """``source`` (uint8 RGB) recoloured so that its Lab mean/std inside ``mask`` move to ``target``'s
    inside ``target_mask`` (default: the same mask; the two images share a frame). ``strength`` in
    [0, 1] interpolates the statistics. Pixels where ``mask`` is 0 are returned unchanged; a mask of
    less than 16 pixels' weight leaves the image as it is (no statistics to trust)."""
    target_mask = mask if target_mask is None else target_mask
    if min(_weight(mask), _weight(target_mask)) < 16:
        return source.copy()
    src_mean, src_std, lab = _stats(source, mask)
    dst_mean, dst_std, _ = _stats(target, target_mask)
    s = float(np.clip(strength, 0.0, 1.0))
    want_mean = src_mean + s * (dst_mean - src_mean)
    want_std = src_std + s * (dst_std - src_std)
    gain = np.where(src_std > 1e-3, want_std / np.maximum(src_std, 1e-3), 1.0)
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
    moved = (lab - src_mean) * gain + want_mean
    moved[:, 0] = np.clip(moved[:, 0], 0.0, 100.0)
    out = source.copy()
    out[mask > 0] = _rgb(moved)
    return out
