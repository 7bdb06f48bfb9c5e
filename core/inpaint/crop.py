"""Crop → resize → feathered stitch: the geometry of inpainting one face at a useful resolution.

A face that fills 150 px of a photo gets only ~19 latent cells across if the whole frame is sampled,
so we sample a context crop around it, scaled up to the size the model was trained at, and paste the
result back. The promise to the user is that the background is *bit-identical*: every pixel whose
blend weight is exactly 0 is copied, never recomputed, so only the blend zone (mask support plus a
feather band) can change.

Pure numpy/OpenCV; no torch, no ComfyUI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MULTIPLE = 8  # SDXL's VAE downsamples by 8: sampling dims must be multiples of it
MIN_SIDE = 64


@dataclass(frozen=True)
class CropRegion:
    """A crop box in image pixels (``x1``/``y1`` exclusive) and the size it is sampled at."""

    x0: int
    y0: int
    x1: int
    y1: int
    sample_w: int  # width of the resized crop handed to the sampler (a multiple of the model's, see plan_crop)
    sample_h: int
    capped: bool = False  # True when the memory cap stopped us from reaching the target size

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def scale(self) -> float:
        return self.sample_w / self.width

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def describe(self) -> str:
        text = (f"crop {self.width}x{self.height} at ({self.x0},{self.y0}) -> sampled at "
                f"{self.sample_w}x{self.sample_h} (x{self.scale:.2f})")
        return text + (" [capped for memory]" if self.capped else "")


def mask_bbox(mask: np.ndarray, threshold: float = 0.0) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1 exclusive) of ``mask > threshold``, or None when nothing is set."""
    ys, xs = np.nonzero(mask > threshold)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _fit_interval(lo: float, hi: float, size: int, limit: int) -> tuple[int, int]:
    """An integer interval of length ``size`` covering [lo, hi) as centred as possible, shifted (not
    clipped) to stay inside [0, limit): a face at the border keeps a full-size crop."""
    size = min(int(math.ceil(size)), limit)
    centre = (lo + hi) / 2
    start = int(round(centre - size / 2))
    start = max(0, min(start, limit - size))
    return start, start + size


def plan_crop(mask_box: tuple[int, int, int, int], image_hw: tuple[int, int], face_size: float,
              context: float, blend: int, target_size: int, max_pixels: int | None = None,
              multiple: int = MULTIPLE) -> CropRegion:
    """Where to crop and at what size to sample.

    The crop is a square of ``context`` × face size around the mask, never smaller than the mask's
    box plus the feather band (so the blend zone ends inside the crop, not at its edge), shifted
    inward at image borders and clipped only by the image itself. Its longer side is scaled to
    ``target_size`` but never below 1× (never throw away original detail), and never above
    ``max_pixels`` (default: (2 × target)², a memory cap). Sampling sizes are multiples of
    ``multiple`` (8 for SDXL; 16 for FLUX.2 and Qwen-Image, see core/inpaint/family.py).
    """
    h, w = image_hw
    x0, y0, x1, y1 = mask_box
    margin = 2 * blend + multiple
    side = max(context * face_size, x1 - x0 + margin, y1 - y0 + margin, MIN_SIDE)
    cx0, cx1 = _fit_interval(x0, x1, side, w)
    cy0, cy1 = _fit_interval(y0, y1, side, h)
    # a mask wider than the square (two faces in one mask, a long neck) still fits entirely
    cx0, cx1 = min(cx0, max(0, x0 - blend - 4)), max(cx1, min(w, x1 + blend + 4))
    cy0, cy1 = min(cy0, max(0, y0 - blend - 4)), max(cy1, min(h, y1 + blend + 4))
    cw, ch = cx1 - cx0, cy1 - cy0

    scale = max(1.0, target_size / max(cw, ch))
    cap = max_pixels if max_pixels is not None else (2 * target_size) ** 2
    capped = False
    if cw * ch * scale * scale > cap:
        scale = math.sqrt(cap / (cw * ch))
        capped = True
    sw = max(multiple, int(round(cw * scale / multiple)) * multiple)
    sh = max(multiple, int(round(ch * scale / multiple)) * multiple)
    return CropRegion(cx0, cy0, cx1, cy1, sw, sh, capped)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with the filter that suits the direction: area for shrinking, Lanczos for enlarging."""
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return image.copy()
    shrinking = width * height < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    out = cv2.resize(image, (width, height), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def blend_alpha(mask: np.ndarray, blend: int) -> np.ndarray:
    """Feathered composite weight: the mask itself, plus a smooth ramp ``blend`` px wide around its
    core (pixels ≥ 0.5). Exactly 0 beyond that band, so everything there stays bit-identical."""
    import cv2

    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    core = m >= 0.5
    if blend <= 0 or not core.any():
        return m
    dist = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(1.0 - dist / float(blend), 0.0, 1.0)
    ramp = t * t * (3.0 - 2.0 * t)  # smoothstep: no visible kink at either end of the band
    return np.maximum(m, ramp).astype(np.float32)


def crop_for_sampling(image: np.ndarray, alpha: np.ndarray, region: CropRegion) -> tuple[np.ndarray, np.ndarray]:
    """The crop as float32 RGB in [0, 1] and its blend weight, both at the sampling size."""
    sy, sx = region.slices()
    pixels = resize(image[sy, sx], region.sample_w, region.sample_h).astype(np.float32) / 255.0
    weight = np.clip(resize(alpha[sy, sx], region.sample_w, region.sample_h), 0.0, 1.0)
    return pixels, weight.astype(np.float32)


def stitch(image: np.ndarray, generated: np.ndarray, alpha: np.ndarray, region: CropRegion) -> np.ndarray:
    """Paste ``generated`` (float RGB in [0, 1] at the sampling size) back into a copy of ``image``.

    Only pixels with ``alpha > 0`` inside the crop are computed; all others are the input's bytes.
    """
    sy, sx = region.slices()
    gen = resize(np.clip(generated, 0.0, 1.0).astype(np.float32), region.width, region.height)
    a = alpha[sy, sx]
    zone = a > 0
    out = image.copy()
    if not zone.any():
        return out
    crop = out[sy, sx]
    w = a[zone][:, None]
    mixed = w * (gen[zone] * 255.0) + (1.0 - w) * crop[zone].astype(np.float32)
    crop[zone] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def split_mask_by_faces(mask: np.ndarray, centres: list[tuple[float, float]], sizes: list[float]) -> list[np.ndarray]:
    """One mask per face: each pixel of ``mask`` goes to the face whose centre is nearest in units of
    that face's size, so the parsing node's single mask for a couple becomes one region per person."""
    if len(centres) <= 1:
        return [mask.copy() for _ in centres]
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.stack([np.hypot(xs - cx, ys - cy) / max(s, 1.0) for (cx, cy), s in zip(centres, sizes)])
    owner = np.argmin(dist, axis=0)
    return [np.where(owner == k, mask, 0.0).astype(np.float32) for k in range(len(centres))]
