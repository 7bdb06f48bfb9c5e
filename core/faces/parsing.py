"""BiSeNet face parsing on an aligned, upscaled crop of each face, mapped back to the image.

The seed squeezed the whole frame to 512x512, so a face that fills 10 % of a photo was parsed from
~50 pixels. Here each face is aligned with a similarity transform from its 5 landmarks to the FFHQ 512
template (the alignment GFPGAN/facexlib crops use: the face fills about half the crop, leaving room
for hair and neck), parsed at 512x512, and the parse is warped back with the inverse transform.

Classes are CelebAMask-HQ's as used by face-parsing.PyTorch (``79999_iter.pth``):
0 background, 1 skin, 2 l_brow, 3 r_brow, 4 l_eye, 5 r_eye, 6 eye_g, 7 l_ear, 8 r_ear, 9 ear_r,
10 nose, 11 mouth, 12 u_lip, 13 l_lip, 14 neck, 15 neck_l, 16 cloth, 17 hair, 18 hat.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import comfy_adapter, masks
from . import align

CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
           "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
FACE_CLASSES = (1, 2, 3, 4, 5, 10, 11, 12, 13)  # skin, brows, eyes, nose, mouth, lips: always in the mask
OPTIONAL_CLASSES = {"hair": (17,), "neck": (14,), "ears": (7, 8, 9), "glasses": (6,), "hat": (18,),
                    "necklace": (15,), "cloth": (16,)}
HAIR = 17
CROP = 512
PALETTE = np.array([[0, 0, 0], [255, 204, 153], [139, 69, 19], [160, 82, 45], [0, 128, 255], [0, 191, 255],
                    [255, 255, 0], [255, 0, 127], [255, 51, 153], [255, 215, 0], [255, 128, 0], [220, 20, 60],
                    [255, 0, 0], [178, 34, 34], [0, 204, 102], [0, 255, 204], [51, 51, 255], [102, 51, 0],
                    [153, 0, 255]], np.uint8)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

ParseFn = Callable[[np.ndarray], np.ndarray]  # (512,512,3) uint8 RGB crop -> (512,512) uint8 labels


def align_matrix(kps: np.ndarray) -> np.ndarray:
    """Image → 512 parsing crop: least-squares fit of all five landmarks to the FFHQ template."""
    return align.ffhq_affine(kps, CROP, robust=False)


def crop_face(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The aligned 512x512 crop, antialiased when the face is larger than the crop needs."""
    return align.warp(rgb, matrix, CROP, border="zero", smooth=True)


# ------------------------------------------------------------------------------------------ network
class FaceParser:
    """A loaded BiSeNet, called on one aligned crop at a time; remembers recent parses so that moving a
    mask slider in the editor does not run the network again."""

    def __init__(self, managed, name: str = "parsing_bisenet.pth"):
        self.managed = managed
        self.name = name
        self._recent: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        key = hashlib.blake2b(np.ascontiguousarray(crop).tobytes(), digest_size=16).digest()
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        labels = self._run(crop)
        with self._lock:
            self._recent[key] = labels
            while len(self._recent) > 32:
                self._recent.popitem(last=False)
        return labels

    def _run(self, crop: np.ndarray) -> np.ndarray:
        import torch

        module = self.managed.load()
        device = next(module.parameters()).device
        x = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            logits = module(x)[0]
        return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


_parsers: dict[tuple, FaceParser] = comfy_adapter.ResidentCache("face parsers")
_parsers_lock = threading.Lock()


def load_parser(path: str | Path, device=None) -> FaceParser:
    from ...models.bisenet import load_bisenet

    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device))
    with _parsers_lock:
        parser = _parsers.get(key)
        if parser is None:
            parser = FaceParser(load_bisenet(path, device), path.name)
            _parsers[key] = parser
        return parser


# ------------------------------------------------------------------------------------- per face
@dataclass
class ParsedFace:
    labels: np.ndarray  # (512, 512) uint8 class per crop pixel
    matrix: np.ndarray  # (2, 3) image → crop
    kps_crop: np.ndarray  # (5, 2) landmarks in crop space
    size: float  # face size in image pixels (Face.size)


def parse_face(rgb: np.ndarray, face, parse_fn: ParseFn) -> ParsedFace:
    matrix = align_matrix(face.kps)
    labels = np.asarray(parse_fn(crop_face(rgb, matrix)), np.uint8)
    kps = align.transform_points(matrix, face.kps)
    return ParsedFace(labels=labels, matrix=matrix, kps_crop=kps, size=float(face.size))


def _seed(parsed: ParsedFace) -> np.ndarray:
    """Where this face certainly is in the crop: the landmarks' hull, grown a little."""
    import cv2

    seed = np.zeros((CROP, CROP), np.uint8)
    hull = cv2.convexHull(np.round(parsed.kps_crop).astype(np.int32))
    cv2.fillConvexPoly(seed, hull, 1)
    return masks.grow(seed.astype(bool), 12)


def face_regions(parsed: ParsedFace, extra: tuple[int, ...], fill: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mask, hair) in crop space: the face classes connected to this face's landmarks, plus the
    ``extra`` classes touching them; ``hair`` is the hair class touching the face, for colour sampling.

    Keeping only connected parts drops a neighbour's skin or hair that the crop of a couple photo shows.
    """
    core = masks.keep_connected(np.isin(parsed.labels, FACE_CLASSES), _seed(parsed))
    near = masks.grow(core, 8) if core.any() else _seed(parsed)
    extra_mask = masks.keep_connected(np.isin(parsed.labels, extra), near) if extra else np.zeros_like(core)
    hair = masks.keep_connected(parsed.labels == HAIR, near)
    mask = core | extra_mask
    if fill:
        mask = masks.fill_holes(mask)
    return mask, hair


def face_mask_in_image(parsed: ParsedFace, crop_mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return align.warp_back(crop_mask.astype(np.float32), parsed.matrix, shape) >= 0.5


def colour_preview(rgb: np.ndarray, parsed: list[ParsedFace]) -> np.ndarray:
    """The image with each face's parse painted over it in the CelebAMask-HQ palette."""
    out = np.ascontiguousarray(rgb, np.uint8).copy()
    for p in parsed:
        labels = align.warp_back(p.labels, p.matrix, rgb.shape[:2], nearest=True)
        on = labels > 0
        blend = 0.45 * out[on].astype(np.float32) + 0.55 * PALETTE[labels[on]].astype(np.float32)
        out[on] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------- the stage
@dataclass(frozen=True)
class MaskOptions:
    hair: bool = False
    neck: bool = False
    ears: bool = True
    glasses: bool = True
    hat: bool = False
    expand: float = 0.0  # × face size, per face
    padding: float = 0.0  # ± pixels, after expand
    blur: float = 0.0  # soft-edge width in pixels
    fill_holes: bool = True

    @property
    def extra_classes(self) -> tuple[int, ...]:
        out: tuple[int, ...] = ()
        for name in ("hair", "neck", "ears", "glasses", "hat"):
            if getattr(self, name):
                out += OPTIONAL_CLASSES[name]
        return out


@dataclass
class ImageMasks:
    combined: np.ndarray  # (H, W) float32: every selected face
    per_face: list[np.ndarray]  # (H, W) float32 each, in selection order
    hair: np.ndarray  # (H, W) float32, hard: hair of the selected faces
    preview: np.ndarray  # (H, W, 3) uint8
    notes: list[str]


def image_masks(rgb: np.ndarray, faces: list, parse_fn: ParseFn, options: MaskOptions,
                on_face: Callable[[], None] | None = None) -> ImageMasks:
    """Parse every face of one image and build its masks with the user's controls (see core.masks)."""
    h, w = rgb.shape[:2]
    parsed, face_masks, notes = [], [], []
    hair = np.zeros((h, w), bool)
    for i, face in enumerate(faces):
        p = parse_face(rgb, face, parse_fn)
        crop_mask, crop_hair = face_regions(p, options.extra_classes, options.fill_holes)
        if not crop_mask.any():
            notes.append(f"face {i}: the parser found no face pixels; its mask is empty")
        parsed.append(p)
        face_masks.append(face_mask_in_image(p, crop_mask, (h, w)))
        hair |= face_mask_in_image(p, crop_hair, (h, w))
        if on_face is not None:
            on_face()
    empty = np.zeros((h, w), np.float32)
    grown = [masks.grow(m, options.expand * p.size) for m, p in zip(face_masks, parsed)]
    per_face = [masks.finish(m, options.padding, options.blur) for m in grown]
    union = np.zeros((h, w), bool)
    for m in grown:
        union |= m
    combined = masks.finish(union, options.padding, options.blur) if grown else empty
    return ImageMasks(combined=combined, per_face=per_face, hair=hair.astype(np.float32),
                      preview=colour_preview(rgb, parsed), notes=notes)
