"""Aligned face crops in and out of a photo: alignment, the face-only mask, colour matching, paste-back
and the seam band used for refinement.

Shared by the swap and restore stages. A crop is described by the 2x3 affine ``M`` that maps image
pixels to crop pixels (as ``cv2.warpAffine(image, M, (size, size))``). The paste-back touches only the
pixels where the warped mask is above zero, so everything outside the face stays bit-identical.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# 5-point templates (left eye, right eye, nose, left / right mouth corner)
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
# FFHQ 512 template as used by GFPGAN / facexlib's FaceRestoreHelper
FFHQ_512 = np.array([[192.98138, 239.94708], [318.90277, 240.19366], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)


def arcface_template(size: int) -> np.ndarray:
    """The insightface ``norm_crop`` template at ``size`` (multiples of 112 or of 128, as insightface)."""
    if size % 112 == 0:
        return ARCFACE_112 * (size / 112.0)
    if size % 128 == 0:
        t = ARCFACE_112 * (size / 128.0)
        t[:, 0] += 8.0 * size / 128.0
        return t
    raise ValueError(f"arcface crops are 112*k or 128*k pixels, not {size}")


def ffhq_template(size: int = 512) -> np.ndarray:
    return FFHQ_512 * (size / 512.0)


def arcface_affine(kps: np.ndarray, size: int) -> np.ndarray:
    """Image->crop affine of insightface's ``norm_crop`` (the reference alignment of the swap models)."""
    from insightface.utils import face_align

    return np.asarray(face_align.estimate_norm(np.asarray(kps, np.float32).reshape(5, 2), size), np.float64)


def ffhq_affine(kps: np.ndarray, size: int = 512) -> np.ndarray:
    """Image->crop affine onto the FFHQ template, estimated as facexlib's FaceRestoreHelper does."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(kps, np.float32).reshape(5, 2), ffhq_template(size),
                                       method=cv2.LMEDS)
    if m is None:
        raise ValueError("could not align the face to the FFHQ template (degenerate landmarks)")
    return m.astype(np.float64)


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The aligned crop for affine ``m`` (outside the photo: edge pixels repeated)."""
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def face_mask(size: int, template: np.ndarray, erode: float = 0.05, blur: float = 0.08) -> np.ndarray:
    """Soft face-only mask in crop space: an ellipse from brows to chin derived from the template's
    eyes and mouth, shrunk by ``erode`` and feathered by ``blur`` (both as fractions of the
    eye-to-mouth distance x 2.5, i.e. of the face height). Zero along the crop border."""
    eyes = template[:2].mean(0)
    mouth = template[3:5].mean(0)
    d = float(np.linalg.norm(mouth - eyes))
    face_h = 2.5 * d
    centre = eyes + 0.35 * (mouth - eyes)
    ax = max(0.98 * d - erode * face_h, 1.0)
    ay = max(1.25 * d - erode * face_h, 1.0)
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))), (int(round(ax)), int(round(ay))),
                0, 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    sigma = blur * face_h / 2.0
    if sigma > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    margin = max(2, size // 64)
    mask[:margin] = mask[-margin:] = 0
    mask[:, :margin] = mask[:, -margin:] = 0
    return np.clip(mask, 0.0, 1.0)


def match_colour(swapped: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give the swapped crop the target crop's light: per-channel mean and spread in Lab, measured
    on the face mask of both crops (the swap models see the face, not the scene's light)."""
    weight = mask > 0.5
    if weight.sum() < 16:
        return swapped
    src = cv2.cvtColor(swapped, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    out = src.copy()
    for c in range(3):
        s, r = src[..., c][weight], ref[..., c][weight]
        s_std, r_std = float(s.std()), float(r.std())
        gain = r_std / s_std if s_std > 1e-3 else 1.0
        gain = float(np.clip(gain, 0.5, 2.0))  # do not amplify noise on flat faces
        out[..., c] = (src[..., c] - s.mean()) * gain + r.mean()
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 affine of ``outer`` applied after ``inner``."""
    a = np.vstack([outer, [0, 0, 1]])
    b = np.vstack([inner, [0, 0, 1]])
    return (a @ b)[:2]


def invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


@dataclass
class Pasted:
    image: np.ndarray  # uint8 RGB, the result
    mask: np.ndarray  # float32 (H, W), the blend weight that was used (0 = pixel untouched)


def paste(image: np.ndarray, crop: np.ndarray, m: np.ndarray, crop_mask: np.ndarray) -> Pasted:
    """Blend an aligned crop back into the photo through its mask; pixels whose warped mask is 0 keep
    their exact original value. Works on the face's bounding box only (fast on large photos)."""
    h, w = image.shape[:2]
    size = crop.shape[0]
    inv = invert(m)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    full_mask = np.zeros((h, w), np.float32)
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return Pasted(out, full_mask)
    shift = inv.copy()
    shift[:, 2] -= (x0, y0)
    roi = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(crop, shift, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wmask = cv2.warpAffine(crop_mask.astype(np.float32), shift, roi, flags=cv2.INTER_LINEAR, borderValue=0.0)
    wmask = np.clip(wmask, 0.0, 1.0)
    region = image[y0:y1, x0:x1].astype(np.float32)
    blended = region + (warped.astype(np.float32) - region) * wmask[..., None]
    blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    touched = wmask > 0
    out[y0:y1, x0:x1][touched] = blended[touched]
    full_mask[y0:y1, x0:x1] = wmask
    return Pasted(out, full_mask)


def seam_band(masks: list[np.ndarray], width: int) -> np.ndarray:
    """A soft band ``width`` pixels wide around the edge of each pasted face: where a light inpaint
    should blend the border. Zero far from every face."""
    if not masks:
        raise ValueError("no masks")
    h, w = masks[0].shape
    band = np.zeros((h, w), np.float32)
    width = max(int(width), 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    for m in masks:
        hard = (m > 0.5).astype(np.uint8)
        if not hard.any():
            continue
        ring = cv2.dilate(hard, kernel) - cv2.erode(hard, kernel)
        band = np.maximum(band, ring.astype(np.float32))
    if band.any():
        band = cv2.GaussianBlur(band, (0, 0), max(width / 3.0, 0.5))
    return np.clip(band, 0.0, 1.0)
