"""Faces follow the image: FACES detected on one image, used on an image an earlier node changed.

An inpaint at denoise 0.9 can move a face by a few pixels; a swap, restore or score that aligns to the
landmarks detected before it would then cut the wrong crop. Each FaceSet remembers the image it was
detected on (shape + :func:`fingerprint`). A later node hands its own input image here: when it is
the same image, the faces are used as they are; when it differs, the faces placed on it by the node
that changed it (:mod:`core.faces.known`: swap and restore change pixels only inside the faces they
aligned to) or else, with an analyzer connected, the faces detected again on it are matched to the
given ones by box overlap (IoU), so the user's selection and index mapping are kept; without either
the node says so in its text (same size) or stops (different size) instead of silently using stale
positions.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import I2PError
from . import known
from .types import Face, FaceSet

#: a re-detected face is "the same face" when its box overlaps the given one at least this much
MIN_IOU = 0.3
#: detection threshold for the re-detection: the face was already accepted once, so be lenient
REDETECT_THRESHOLD = 0.3


def fingerprint(rgb: np.ndarray) -> str:
    """A cheap, exact identity of an image: BLAKE2b over its shape and uint8 pixels (~3 ms a megapixel)."""
    arr = np.ascontiguousarray(rgb)
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((arr.shape, str(arr.dtype))).encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def scale_faces(faces: list[Face], detected_hw: tuple[int, int], hw: tuple[int, int]) -> list[Face]:
    """Faces detected on a (fh, fw) image, moved to a resized (h, w) copy of it."""
    from dataclasses import replace

    (fh, fw), (h, w) = detected_hw, hw
    scale = np.array([w / fw, h / fh], np.float32)
    return [replace(f, bbox=(np.asarray(f.bbox, np.float32).reshape(2, 2) * scale).reshape(4),
                    kps=np.asarray(f.kps, np.float32) * scale,
                    landmarks_106=None if f.landmarks_106 is None else np.asarray(f.landmarks_106) * scale)
            for f in faces]


def same_aspect(detected_hw: tuple[int, int], hw: tuple[int, int]) -> bool:
    """A resized copy keeps the aspect ratio (within 1 %); another picture usually does not."""
    (fh, fw), (h, w) = detected_hw, hw
    return fh > 0 and fw > 0 and abs(fw / fh - w / h) <= 0.01 * (w / h)


def match_faces(given: list[Face], found: list[Face], min_iou: float = MIN_IOU) -> list[tuple[Face | None, float]]:
    """For each given face (in selection order) the found face that overlaps it most, greedily by best
    overlap so two given faces never take the same found face; (None, best IoU) below ``min_iou``."""
    scores = [(iou(g.bbox, f.bbox), i, j) for i, g in enumerate(given) for j, f in enumerate(found)]
    taken_g: set[int] = set()
    taken_f: set[int] = set()
    out: list[tuple[Face | None, float]] = [(None, 0.0)] * len(given)
    for score, i, j in sorted(scores, reverse=True):
        if i in taken_g:
            continue
        if score < min_iou:
            if out[i][1] < score:
                out[i] = (None, score)
            continue
        if j in taken_f:
            continue
        out[i] = (found[j], score)
        taken_g.add(i)
        taken_f.add(j)
    return out


def same_image(face_set: FaceSet, rgb: np.ndarray, fp: str | None = None) -> bool | None:
    """True / False when the set knows its image, None when it carries no fingerprint (an older FACES).
    ``fp``: the image's fingerprint when the caller already has it."""
    if tuple(face_set.image_size) != tuple(rgb.shape[:2]):
        return False
    if not face_set.fingerprint:
        return None
    return face_set.fingerprint == (fp or fingerprint(rgb))


def faces_on(face_set: FaceSet, rgb: np.ndarray, analyzer, node: str, input_name: str, label: str,
             resized_ok: bool = False) -> tuple[list[Face], list[str]]:
    """The faces of ``face_set`` where they are on ``rgb``, plus notes for the node's info text.

    ``label`` names the image in messages ("image 0"). ``analyzer`` (optional) has
    ``detect(rgb, threshold=...)``; re-detected faces keep the given faces' order. A picture of another
    aspect ratio is an error (wrong FACES). ``resized_ok``: without an analyzer, faces detected on a
    resized copy are scaled to this image (restore, score) instead of being an error (swap)."""
    given = face_set.faces
    if not given:
        return [], []
    fp = fingerprint(rgb)
    same = same_image(face_set, rgb, fp)
    if same is not False:
        return given, []
    h, w = rgb.shape[:2]
    fh, fw = face_set.image_size
    resized = (fh, fw) != (h, w)
    if resized and (not same_aspect((fh, fw), (h, w)) or (analyzer is None and not resized_ok)):
        raise I2PError(node, input_name, f"the faces were detected on a {fw}x{fh} image, but {label} is "
                       f"{w}x{h}.", "detect the faces on the same image that goes into this node"
                       + (" (or connect 'analyzer' so they are found again on it)." if same_aspect((fh, fw), (h, w))
                          else "."))
    expected = scale_faces(given, (fh, fw), (h, w)) if resized else list(given)
    carried = known.placed(fp)  # an earlier node changed the image only inside faces it placed there
    matches = match_faces(expected, carried) if carried is not None else None
    if matches is not None and all(new is not None for new, _ in matches):
        how = "faces taken from the node that changed it only inside them, matched by overlap"
    elif analyzer is None:
        if resized:
            return expected, [f"{label}: the faces were detected on a {fw}x{fh} copy and are scaled to {w}x{h}; "
                              "connect 'analyzer' if an earlier node changed the picture."]
        return given, [f"{label} is not the image these faces were detected on (an earlier node changed it); "
                       "their detected positions are used as they are: connect 'analyzer' so the faces follow "
                       "the image."]
    else:
        matches = match_faces(expected, known.detect(analyzer, rgb, fp, threshold=REDETECT_THRESHOLD))
        how = "faces detected again and matched by overlap"
    out: list[Face] = []
    parts: list[str] = []
    for k, (old, (new, score)) in enumerate(zip(expected, matches)):
        if new is None:
            out.append(old)
            parts.append(f"face {k} not found again (best overlap {score:.2f}), its earlier position is used")
            continue
        out.append(new)
        moved = float(np.linalg.norm(np.mean(new.kps, 0) - np.mean(old.kps, 0)))
        parts.append(f"face {k} IoU {score:.2f}, moved {moved:.1f} px")
    size = f" ({fw}x{fh} -> {w}x{h})" if resized else ""
    return out, [f"{label} changed since detection{size}: {how}: " + "; ".join(parts)]
