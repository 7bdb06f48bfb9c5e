"""Pure mask operations with definitions a user can predict (numpy + OpenCV, no models).

- **grow** by ``r`` pixels: every pixel within Euclidean distance ``r`` of the mask joins it (``r < 0``
  removes every pixel within ``|r|`` of the outside). Exact for any radius (distance transform), so a
  larger radius always gives a superset.
- **expand** is grow with ``r = expand x face size`` (face size: geometric mean of the box sides), so
  the same setting does the same thing to a small and a large face.
- **feather** (the "blur" control) of width ``w``: the soft band is ``w`` pixels wide and centred on
  the hard edge; values are strictly between 0 and 1 only within ``w/2`` of the edge, 1 deeper inside
  and 0 further out (a smoothstep of the signed distance). The image border is not an edge.
- **fill holes**: background regions the mask encloses (eyes, mouth, glasses) become mask.

Masks are bool (H, W) arrays until :func:`feather` turns them into float32 in [0, 1].
"""
from __future__ import annotations

import numpy as np


def _roi(mask: np.ndarray, margin: float) -> tuple[slice, slice] | None:
    """The bounding box of ``mask`` grown by ``margin`` pixels and clipped to the image, or None if empty."""
    ys, xs = np.nonzero(np.any(mask, axis=1)), np.nonzero(np.any(mask, axis=0))
    if ys[0].size == 0:
        return None
    m = int(np.ceil(max(margin, 0))) + 2
    h, w = mask.shape
    return (slice(max(0, ys[0][0] - m), min(h, ys[0][-1] + 1 + m)),
            slice(max(0, xs[0][0] - m), min(w, xs[0][-1] + 1 + m)))


def _distance_outside(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest mask pixel (0 on the mask)."""
    import cv2

    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the nearest non-mask pixel (0 off the mask); the border is not one."""
    import cv2

    padded = np.pad(mask, 1, mode="edge")
    return cv2.distanceTransform(padded.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Dilate (``pixels > 0``) or erode (``pixels < 0``) by a Euclidean distance."""
    mask = np.asarray(mask, bool)
    if pixels == 0 or not mask.any():
        return mask.copy()
    if pixels > 0:
        roi = _roi(mask, pixels)
        out = np.zeros_like(mask)
        out[roi] = _distance_outside(mask[roi]) <= pixels
        return out
    roi = _roi(mask, 0)
    out = np.zeros_like(mask)
    out[roi] = _distance_inside(mask[roi]) > -pixels
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Mask plus every background region that does not touch the image border."""
    from scipy.ndimage import binary_fill_holes

    return binary_fill_holes(np.asarray(mask, bool))


def feather(mask: np.ndarray, width: float) -> np.ndarray:
    """Soft edge ``width`` pixels wide centred on the hard edge (float32 in [0, 1])."""
    mask = np.asarray(mask, bool)
    if width <= 0 or not mask.any():
        return mask.astype(np.float32)
    roi = _roi(mask, width)  # the soft band lies within width/2 of the mask: work on its box only
    m = mask[roi]
    signed = np.where(m, _distance_inside(m) - 0.5, 0.5 - _distance_outside(m))
    t = np.clip(0.5 + signed / float(width), 0.0, 1.0)
    out = np.zeros(mask.shape, np.float32)
    out[roi] = t * t * (3.0 - 2.0 * t)
    return out


def keep_connected(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that overlap ``seed`` (drops e.g. a neighbour's skin in a crop)."""
    import cv2

    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[np.asarray(seed, bool) & mask])
    keep = keep[keep > 0]
    return np.isin(labels, keep)


def expand_faces(face_masks: list[np.ndarray], face_sizes: list[float], expand: float) -> np.ndarray:
    """Union of the per-face masks, each grown by ``expand x its face size`` pixels."""
    if not face_masks:
        raise ValueError("expand_faces needs at least one mask")
    out = np.zeros_like(np.asarray(face_masks[0], bool))
    for mask, size in zip(face_masks, face_sizes):
        out |= grow(mask, float(expand) * float(size))
    return out


def finish(mask: np.ndarray, padding: float = 0.0, blur: float = 0.0) -> np.ndarray:
    """The last two steps every face mask takes: ± padding pixels, then the soft edge."""
    return feather(grow(mask, float(padding)), float(blur))


def box_mask(shape: tuple[int, int], bbox, grow_px: float = 0.0) -> np.ndarray:
    """A filled box, each side moved out by ``grow_px`` (in by a negative value)."""
    h, w = shape
    x1, y1, x2, y2 = (float(v) for v in bbox)
    x1, y1, x2, y2 = x1 - grow_px, y1 - grow_px, x2 + grow_px, y2 + grow_px
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    return (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)


def ellipse_mask(shape: tuple[int, int], bbox, grow_px: float = 0.0) -> np.ndarray:
    """The ellipse inscribed in the box, both semi-axes lengthened by ``grow_px``."""
    h, w = shape
    x1, y1, x2, y2 = (float(v) for v in bbox)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ax, ay = (x2 - x1) / 2 + grow_px, (y2 - y1) / 2 + grow_px
    if ax <= 0 or ay <= 0:
        return np.zeros((h, w), bool)
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    return ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2 <= 1.0
