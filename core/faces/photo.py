"""What every face backend (InsightFace packs, YuNet + AuraFace) does to a photo before its models see
it: one pixel convention, one ladder of detection sizes, one ArcFace crop. Shared here so that the
backends do not import each other."""
from __future__ import annotations

import numpy as np

#: when nothing is found at the requested detection size, retry smaller, in these steps, down to this
#: size: large faces in small images are often missed at 640 and found at 320
RETRY_STEP = 64
MIN_RETRY_SIZE = 320


def as_rgb(image: np.ndarray) -> np.ndarray:
    """RGB uint8 from uint8 or [0, 1] float, grey, grey+alpha or RGBA input."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr


def as_bgr(image: np.ndarray) -> np.ndarray:
    """The contiguous BGR uint8 copy OpenCV and InsightFace's graphs take."""
    return np.ascontiguousarray(as_rgb(image)[:, :, ::-1])


def detection_sizes(det_size: int) -> list[int]:
    """The requested size (a multiple of 32), then the retry ladder below it."""
    det_size = max(32, int(det_size) // 32 * 32)
    return [det_size] + list(range(det_size - RETRY_STEP, MIN_RETRY_SIZE - 1, -RETRY_STEP))


def arcface_crop(image: np.ndarray, kps: np.ndarray, size: int) -> np.ndarray:
    """InsightFace's reference alignment for ArcFace (``norm_crop``: ArcFace template, black outside)."""
    from . import align

    return align.warp(image, align.arcface_affine(kps, int(size)), int(size), border="zero")


def arcface_embedding(recognizer, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
    """The L2-normalised embedding an ArcFace-style recognizer (buffalo_l's w600k, AuraFace) gives the
    aligned crop of one face; zeros for a degenerate crop instead of NaNs."""
    crop = arcface_crop(bgr, kps, recognizer.input_size[0])
    feat = np.asarray(recognizer.get_feat(crop), np.float32).reshape(-1)
    norm = float(np.linalg.norm(feat))
    return feat / norm if norm > 0 and np.isfinite(norm) else np.zeros_like(feat)


class ArcFaceEmbedder:
    """What both face backends share for embeddings: an ArcFace-style recognizer ``self.rec`` (buffalo_l's
    w600k or AuraFace) behind the analyzer's ``self._lock``."""

    rec = None
    _lock = None

    def embed(self, image: np.ndarray, face) -> np.ndarray:
        """The recognizer's embedding (512,) of ``face`` in ``image`` (RGB uint8), L2-normalised."""
        bgr = as_bgr(image)
        with self._lock:
            return self._embed_bgr(bgr, np.asarray(face.kps, np.float32))

    def _embed_bgr(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        return arcface_embedding(self.rec, bgr, kps)
