"""Pre-paste: put the source face onto the target face before inpainting.

A low-denoise inpaint keeps the target's pose and light but cannot move a face far from what it
starts with; starting from the source face, aligned and colour-matched, lets a moderate denoise
(0.65 by default) keep the identity and fix the seams. The alignment is the least-squares
similarity transform (rotation, uniform scale, translation) of the five detector landmarks
(core.faces.align), not a box-to-box resize, so eyes and mouth land where the target's are.
"""
from __future__ import annotations

import numpy as np

from ..faces import align
from ..faces.colour import match_colour


def warp_to(source: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The source image warped into the target frame (antialiased when the source face is the larger)
    and a weight that is 1 where real source pixels landed (0 where the warp ran off the source,
    softly eroded so no black border blends in)."""
    import cv2

    h, w = out_hw
    warped = align.warp(source, matrix, (w, h), smooth=True)
    valid = align.warp(np.ones(source.shape[:2], np.float32), matrix, (w, h), border="zero")
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8))
    return warped, np.clip(valid, 0.0, 1.0)


def feather_inward(mask: np.ndarray, width: int) -> np.ndarray:
    """Soften a mask's edge inside its own support: never grows it, so pixels outside stay untouched."""
    import cv2

    m = np.clip(mask.astype(np.float32), 0, 1)
    if width <= 0:
        return m
    k = 2 * int(width) + 1
    return np.minimum(m, cv2.GaussianBlur(m, (k, k), width / 2.0))


def prepaste_face(target: np.ndarray, target_kps: np.ndarray, mask: np.ndarray, source: np.ndarray,
                  source_kps: np.ndarray, color_strength: float = 1.0, feather: int = 8) -> tuple[np.ndarray, float]:
    """Warp ``source`` so its landmarks sit on ``target_kps``, colour-match it inside ``mask``, and
    blend it in with the mask. Returns the new image (bytes outside the mask's support are the
    target's own) and the landmark fit error in pixels (mean distance after the warp)."""
    from .crop import mask_bbox

    matrix = align.fit_similarity(source_kps, target_kps)
    err = float(np.linalg.norm(align.transform_points(matrix, source_kps) - np.asarray(target_kps), axis=1).mean())
    out = target.copy()
    box = mask_bbox(mask)
    if box is None:
        return out, err
    # work only on the mask's bounding box: the warp, blur and Lab conversion of a whole 4K frame per
    # face would cost seconds for pixels that cannot change
    pad = int(feather) + 2  # room for the feather blur to see the zeros around the mask
    h, w = mask.shape
    x0, y0 = max(0, box[0] - pad), max(0, box[1] - pad)
    x1, y1 = min(w, box[2] + pad), min(h, box[3] + pad)
    shifted = matrix.copy()
    shifted[:, 2] -= (x0, y0)
    warped, valid = warp_to(source, shifted, (y1 - y0, x1 - x0))
    region = out[y0:y1, x0:x1]
    alpha = feather_inward(np.clip(mask[y0:y1, x0:x1], 0, 1) * valid, feather)
    zone = alpha > 0
    if not zone.any():
        return out, err
    if color_strength > 0:
        warped = match_colour(warped, region, alpha, strength=color_strength)
    a = alpha[zone][:, None]
    mixed = a * warped[zone].astype(np.float32) + (1 - a) * region[zone].astype(np.float32)
    region[zone] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out, err

PREPASTE_NODE = "I2P Face Pre-Paste"


def prepaste_batch(images: list[np.ndarray], masks: list[np.ndarray], faces, source_images: list[np.ndarray],
                   source_faces, color_strength: float = 1.0, feather: int = 8) -> tuple[list[np.ndarray], list[str]]:
    """Pre-paste for a batch: target face k of each image gets source face k (or the only source face
    when there is one). The mask (one for the batch or one per image) is split between the target
    faces like the inpaint node splits it."""
    from ..errors import I2PError
    from .crop import split_mask_by_faces

    lines: list[str] = []
    out: list[np.ndarray] = []
    if len(masks) not in (1, len(images)):
        raise I2PError(PREPASTE_NODE, "mask", f"{len(masks)} masks for {len(images)} images.",
                       "give one mask for all images or one per image.")
    for b, image in enumerate(images):
        h, w = image.shape[:2]
        mask = masks[b] if len(masks) > 1 else masks[0]
        if mask.shape != (h, w):
            raise I2PError(PREPASTE_NODE, "mask", f"the mask is {mask.shape[1]}x{mask.shape[0]} but image {b} is {w}x{h}.",
                           "make the mask from this same image.")
        targets = faces.for_image(b)
        if tuple(targets.image_size) != (h, w):
            raise I2PError(PREPASTE_NODE, "faces", f"the faces were detected in a {targets.image_size[1]}x"
                           f"{targets.image_size[0]} image, but image {b} is {w}x{h}.",
                           "connect the FACES of this same image.")
        si = min(b, len(source_images) - 1)
        src_img, src_set = source_images[si], source_faces.for_image(si)
        if tuple(src_set.image_size) != src_img.shape[:2]:
            raise I2PError(PREPASTE_NODE, "source_faces", "the source faces were detected in another image size.",
                           "connect the FACES of the source image.")
        if not src_set.faces:
            raise I2PError(PREPASTE_NODE, "source_faces", "no face was found in the source image.",
                           "use a source photo with a clearly visible face, or lower the detection threshold.")
        result = image.copy()
        tf = targets.faces
        parts = split_mask_by_faces(mask, [f.center for f in tf], [f.size for f in tf])
        for k, (face, part) in enumerate(zip(tf, parts)):
            if k >= len(src_set.faces) and len(src_set.faces) > 1:
                lines.append(f"image {b} face {k}: no source face {k}, left as it was.")
                continue
            si_face = min(k, len(src_set.faces) - 1)
            src_face = src_set.faces[si_face]
            if not (part > 0).any():
                lines.append(f"image {b} face {k}: mask empty here, nothing pasted.")
                continue
            result, err = prepaste_face(result, face.kps, part, src_img, src_face.kps, color_strength, feather)
            lines.append(f"image {b} face {k}: source face {si_face} pasted, "
                         f"landmark fit error {err:.2f} px.")
        if not tf:
            lines.append(f"image {b}: no target face, image unchanged.")
        out.append(result)
    return out, lines
