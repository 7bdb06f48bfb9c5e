"""The one face geometry of the pack: 5-point templates, the landmark fit, aligned crops, warp back,
the face-only mask, paste-back and the seam band.

Used by parsing (FFHQ 512), the identity crops (ArcFace 112/224), pre-paste (source onto target),
swap (ArcFace 128, Ghost's pose templates at 224) and restore (FFHQ 512). A crop is described by
the 2x3 affine ``M`` that maps image pixels to crop pixels (as ``cv2.warpAffine(image, M, size)``).
The paste-back touches only the pixels where the warped mask is above zero, so everything outside
the face stays bit-identical. Sizes and templates are arguments: nothing here imports a stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# 5-point templates (left eye, right eye, nose, left / right mouth corner), in crop pixels
#: insightface's ``arcface_dst`` at 112 (ArcFace, inswapper, IP-Adapter FaceID's CLIP crop)
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
#: FFHQ at 512 as facexlib's FaceRestoreHelper (GFPGAN) writes it
FFHQ_512 = np.array([[192.98138, 239.94708], [318.90277, 240.19366], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)
#: insightface 0.2.1 ``src_map[112]``: left profile, left, frontal, right, right profile. Ghost crops
#: its training and inference faces with the least-error one of these (``estimate_norm(mode='None')``)
POSES_112 = np.array([
    [[51.642, 50.115], [57.617, 49.990], [35.740, 69.007], [51.157, 89.050], [57.025, 89.702]],
    [[45.031, 50.118], [65.568, 50.872], [39.677, 68.111], [45.177, 86.190], [64.246, 86.758]],
    [[39.730, 51.138], [72.270, 51.138], [56.000, 68.493], [42.463, 87.010], [69.537, 87.010]],
    [[46.845, 50.872], [67.382, 50.118], [72.737, 68.111], [48.167, 86.758], [67.236, 86.190]],
    [[54.796, 49.990], [60.771, 50.115], [76.673, 69.007], [55.388, 89.702], [61.257, 89.050]],
], dtype=np.float64)
POSE_NAMES = ("left profile", "left", "frontal", "right", "right profile")


# ----------------------------------------------------------------------------------- templates
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


def pose_templates(size: int = 224) -> np.ndarray:
    """(5, 5, 2): insightface 0.2.1's five pose templates at ``size`` (its ``src_map``: 112 and 224)."""
    if size % 112:
        raise ValueError(f"pose templates are defined for 112*k pixels, not {size}")
    return POSES_112 * (size / 112.0)


# ---------------------------------------------------------------------------------- landmark fit
def fit_similarity(src: np.ndarray, dst: np.ndarray, robust: bool = False) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, shift) taking points ``src`` onto ``dst``.

    Default: the least-squares fit over all points (Umeyama; what insightface's ``estimate_norm``
    computes with scikit-image). ``robust``: OpenCV's LMEDS estimate, which is what facexlib's
    FaceRestoreHelper (GFPGAN's reference crop) uses; it may ignore one or two landmarks.
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if len(src) < 2 or len(src) != len(dst):
        raise ValueError("a similarity fit needs at least two matching landmarks")
    if robust:
        m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
        if m is None:
            raise ValueError("degenerate landmarks: all points coincide")
        return m.astype(np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    var = float((s ** 2).sum())
    if var <= 1e-12:
        raise ValueError("degenerate landmarks: all points coincide")
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / var
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / var
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (md - rot @ ms)[:, None]])


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]


def arcface_affine(kps: np.ndarray, size: int) -> np.ndarray:
    """Image->crop affine of insightface's ``norm_crop`` (ArcFace, inswapper, the CLIP face crop)."""
    return fit_similarity(kps, arcface_template(size))


def ffhq_affine(kps: np.ndarray, size: int = 512, robust: bool = True) -> np.ndarray:
    """Image->crop affine onto the FFHQ template; ``robust`` as facexlib's FaceRestoreHelper (restore),
    least squares for parsing (a stable fit of all five points for the mask)."""
    return fit_similarity(kps, ffhq_template(size), robust=robust)


def best_template_affine(kps: np.ndarray, templates: np.ndarray) -> tuple[np.ndarray, int]:
    """insightface 0.2.1 ``estimate_norm(kps, size, mode='None')``: fit every template, keep the one
    whose fitted landmarks lie closest (sum of point distances). Returns (affine, template index)."""
    best, best_i, best_err = None, -1, np.inf
    for i, template in enumerate(np.asarray(templates, np.float64)):
        m = fit_similarity(kps, template)
        err = float(np.linalg.norm(transform_points(m, kps) - template, axis=1).sum())
        if err < best_err:
            best, best_i, best_err = m, i, err
    return best, best_i


# ------------------------------------------------------------------------------- crops and back
def scale_of(m: np.ndarray) -> float:
    """Crop pixels per image pixel of a similarity ``m``."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, np.float64)[:, :2]))))


def crop_box(m: np.ndarray, size: tuple[int, int], shape: tuple[int, int], pad: int = 1) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of an (H, W) image that a (w, h) crop of ``m`` reads, clipped."""
    w, h = size
    inv = invert(m)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ inv.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def warp(image: np.ndarray, m: np.ndarray, size, border: str = "replicate", smooth: bool = False) -> np.ndarray:
    """The crop of ``image`` for affine ``m``; ``size`` is an int (square) or (w, h).

    ``border``: "replicate" (edge pixels repeated) or "zero" (black, as insightface's norm_crop).
    ``smooth``: antialiased when shrinking (Gaussian pre-blur of the pixels the crop reads, sigma
    (1/scale - 1)/2 as scikit-image's rescale) and bicubic when enlarging; plain bilinear otherwise.
    ``cv2.INTER_AREA`` cannot do the former: warpAffine ignores it and interpolates bilinearly.
    """
    w, h = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    src = np.ascontiguousarray(image)
    m = np.asarray(m, np.float64)
    flags = cv2.INTER_LINEAR
    if smooth:
        scale = scale_of(m)
        sigma = 0.5 * (1.0 / max(scale, 1e-6) - 1.0)
        if sigma > 0.25:
            # blur only the pixels the crop reads (plus the kernel's reach), then warp from that box
            x0, y0, x1, y1 = crop_box(m, (w, h), src.shape[:2], pad=int(np.ceil(3 * sigma)) + 2)
            if x1 > x0 and y1 > y0:
                src = cv2.GaussianBlur(np.ascontiguousarray(src[y0:y1, x0:x1]), (0, 0), sigma)
                m = m.copy()
                m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
        elif scale > 1.0:
            flags = cv2.INTER_CUBIC
    if border == "zero":
        return cv2.warpAffine(src, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpAffine(src, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def warp_back(arr: np.ndarray, m: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """A crop-space array warped back onto an (H, W) image: zeros outside the crop's footprint."""
    h, w = shape
    out = np.zeros((h, w) + arr.shape[2:], arr.dtype)
    x0, y0, x1, y1 = crop_box(m, (arr.shape[1], arr.shape[0]), shape)
    if x1 <= x0 or y1 <= y0:
        return out
    inv = invert(m)
    inv[:, 2] -= (x0, y0)
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out[y0:y1, x0:x1] = cv2.warpAffine(np.ascontiguousarray(arr), inv, (x1 - x0, y1 - y0), flags=flags,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 affine of ``outer`` applied after ``inner``."""
    a = np.vstack([outer, [0, 0, 1]])
    b = np.vstack([inner, [0, 0, 1]])
    return (a @ b)[:2]


def invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


# --------------------------------------------------------------------------- mask, paste, seam
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


@dataclass
class Pasted:
    image: np.ndarray  # uint8 RGB, the result
    mask: np.ndarray  # float32 (H, W), the blend weight that was used (0 = pixel untouched)


def paste(image: np.ndarray, crop: np.ndarray, m: np.ndarray, crop_mask: np.ndarray) -> Pasted:
    """Blend an aligned crop back into the photo through its mask; pixels whose warped mask is 0 keep
    their exact original value. Works on the face's bounding box only (fast on large photos)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = crop_box(m, (crop.shape[1], crop.shape[0]), (h, w), pad=2)
    full_mask = np.zeros((h, w), np.float32)
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return Pasted(out, full_mask)
    shift = invert(m)
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
