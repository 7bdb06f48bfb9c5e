"""Face inpaint orchestration: validate, plan one crop per face, sample each, stitch back.

The sampler, the VAE and the conditioning arrive as injected callables (:class:`SamplingFns`): in
ComfyUI they are ComfyUI's own (``core/inpaint_sampling.py``), in CI they are fakes, so the whole
flow — placement, bit-exact background, variations, several faces, cancel, progress — is tested
without a checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import crop as ic
from ..errors import I2PError
from ..faces.types import Faces

NODE = "I2P Face Inpaint"
EMPTY_MASK = 0.5 / 255  # a mask whose maximum would round to 0 in 8 bits is empty
FULL_MASK = 1.0 - 0.5 / 255


@dataclass
class InpaintSettings:
    seed: int = 0
    steps: int = 20
    denoise: float = 0.5
    target_size: int = 1024
    context: float = 2.0  # crop side as a multiple of the face size
    blend: int = 16  # feather band in image pixels
    batch_count: int = 1  # variations, seeds seed, seed+1, ...
    max_pixels: int | None = None  # sampling-area cap; None = (2 * target_size) ** 2
    multiple: int = ic.MULTIPLE  # sampling sizes are multiples of this: 8 for SDXL, 16 for FLUX.2 / Qwen-Image


@dataclass
class SamplingFns:
    """What the orchestration needs from a diffusion backend (tensors are torch)."""

    encode: Callable[[Any], Any]  # pixels (1, H, W, 3) in [0, 1] -> latent
    decode: Callable[[Any], Any]  # latent -> pixels (1, H, W, 3)
    sample: Callable[..., Any]  # (latent dict, positive, negative, seed, callback) -> latent
    positive: Any
    negative: Any
    inpaint_model: bool  # 9-channel inpainting UNet: condition like InpaintModelConditioning
    reference_crop: bool = False  # edit model: append the crop's latent to conditionings that carry references
    set_values: Callable[[Any, dict], Any] | None = None  # node_helpers.conditioning_set_values
    preview_callback: Callable[[], Callable | None] = lambda: None  # ComfyUI's step previews


@dataclass
class FaceJob:
    image_index: int
    face_index: int | None  # None: no FACES entry, the whole mask is one region
    region: ic.CropRegion
    alpha: np.ndarray  # full-image blend weight of this face


@dataclass
class InpaintResult:
    images: list[np.ndarray]  # uint8 RGB, image-major: image 0 variations, image 1 variations, ...
    previews: list[np.ndarray]  # one per face job (first variation): crop before | after
    lines: list[str] = field(default_factory=list)
    steps_run: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# ------------------------------------------------------------------------------------- validation
def _mask_for(masks: list[np.ndarray], b: int, n_images: int) -> np.ndarray:
    if len(masks) == 1:
        return masks[0]
    if len(masks) != n_images:
        raise I2PError(NODE, "mask", f"the mask batch has {len(masks)} masks for {n_images} images.",
                       "give one mask for all images or one per image (the face-parsing node of the same images).")
    return masks[b]


def plan_jobs(images: list[np.ndarray], masks: list[np.ndarray], faces: Faces | None,
              settings: InpaintSettings) -> tuple[list[list[FaceJob]], list[str]]:
    """Check every input and plan every crop before anything is sampled, so bad input fails in
    seconds with a message instead of minutes later deep inside the sampler."""
    notes: list[str] = []
    jobs: list[list[FaceJob]] = []
    if faces is not None and len(faces.sets) not in (1, len(images)):
        raise I2PError(NODE, "faces", f"FACES holds {len(faces.sets)} face sets for {len(images)} images.",
                       "connect the FACES output of the analyzer that analysed this same IMAGE batch.")
    for b, image in enumerate(images):
        h, w = image.shape[:2]
        mask = _mask_for(masks, b, len(images))
        if mask.shape != (h, w):
            raise I2PError(NODE, "mask", f"the mask is {mask.shape[1]}x{mask.shape[0]} but image {b} is {w}x{h}.",
                           "make the mask from this same image (face-parsing node), or resize it to the image.")
        face_set = faces.for_image(b) if faces is not None else None
        if face_set is not None and tuple(face_set.image_size) != (h, w):
            fh, fw = face_set.image_size
            raise I2PError(NODE, "faces", f"the faces were detected in a {fw}x{fh} image, but image {b} is {w}x{h}.",
                           "connect the FACES output of the analyzer that analysed this same image.")
        if face_set is not None and not face_set.faces:
            notes.append(f"image {b}: no face (passed through by I2P Detect Faces), image returned unchanged.")
            jobs.append([])
            continue
        peak = float(mask.max()) if mask.size else 0.0
        if peak < EMPTY_MASK:
            notes.append(f"image {b}: the mask is empty, image returned unchanged.")
            jobs.append([])
            continue
        if float(mask.min()) >= FULL_MASK:
            raise I2PError(NODE, "mask", f"the mask of image {b} covers the whole image, so nothing of the "
                           "photo would be kept and no face region can be found.",
                           "connect the face-parsing mask of the faces to inpaint (or use KSampler for a full-frame inpaint).")
        image_jobs: list[FaceJob] = []
        face_list = face_set.faces if face_set is not None else []
        if face_list:
            parts = ic.split_mask_by_faces(mask, [f.center for f in face_list], [f.size for f in face_list])
            for k, (face, part) in enumerate(zip(face_list, parts)):
                box = ic.mask_bbox(part, EMPTY_MASK)
                if box is None:
                    notes.append(f"image {b} face {k}: no mask pixels near this face, skipped.")
                    continue
                image_jobs.append(_job(b, k, part, box, face.size, (h, w), settings))
        else:  # no FACES at all (API use): the mask is one region
            box = ic.mask_bbox(mask, EMPTY_MASK)
            size = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
            notes.append(f"image {b}: no FACES given, the mask is inpainted as one region.")
            image_jobs.append(_job(b, None, mask, box, size, (h, w), settings))
        jobs.append(image_jobs)
    return jobs, notes


def _job(b, k, part, box, face_size, hw, s: InpaintSettings) -> FaceJob:
    region = ic.plan_crop(box, hw, face_size, s.context, s.blend, s.target_size, s.max_pixels, s.multiple)
    return FaceJob(b, k, region, ic.blend_alpha(part, s.blend))


# --------------------------------------------------------------------------------------- sampling
def _set_values(fns: SamplingFns, cond, values: dict):
    if fns.set_values is not None:
        return fns.set_values(cond, values)
    return [[c[0], {**c[1], **values}] for c in cond]


def with_crop_reference(cond, crop_latent):
    """``cond`` with the crop's latent appended as the last reference latent of every entry that
    already carries reference latents (the user's ReferenceLatent / TextEncodeQwenImageEditPlus
    images keep their indices). Entries without references, and the input list, are left as they
    are: see core/inpaint/family.py for why the crop goes last and only where references exist."""
    out = []
    for entry in cond:
        refs = entry[1].get("reference_latents")
        if refs:
            entry = [entry[0], {**entry[1], "reference_latents": list(refs) + [crop_latent]}]
        out.append(entry)
    return out


def condition(fns: SamplingFns, pixels, mask):
    """Positive, negative and latent for one crop. An inpainting UNet sees the crop with the masked
    area set to grey plus the mask as extra channels (as ComfyUI's InpaintModelConditioning does);
    any model gets the mask as a latent noise mask so only the masked area is re-noised."""
    latent = {"samples": fns.encode(pixels), "noise_mask": mask}
    if fns.reference_crop:
        return (with_crop_reference(fns.positive, latent["samples"]),
                with_crop_reference(fns.negative, latent["samples"]), latent)
    if not fns.inpaint_model:
        return fns.positive, fns.negative, latent
    keep = (1.0 - mask.round())[:, 0, :, :, None]
    masked = (pixels - 0.5) * keep + 0.5
    values = {"concat_latent_image": fns.encode(masked), "concat_mask": mask}
    return _set_values(fns, fns.positive, values), _set_values(fns, fns.negative, values), latent


def _crop_preview(before: np.ndarray, after: np.ndarray, weight: np.ndarray, side: int = 384) -> np.ndarray:
    """Crop as sampled (blend zone tinted) next to the result, letterboxed to side x 2*side."""
    tint = before.astype(np.float32)
    tint[..., 0] = tint[..., 0] * (1 - 0.4 * weight) + 255 * 0.4 * weight
    panel = np.zeros((side, 2 * side, 3), np.uint8)
    for i, img in enumerate((tint, after.astype(np.float32))):
        h, w = img.shape[:2]
        s = side / max(h, w)
        nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
        small = np.clip(ic.resize(img, nw, nh), 0, 255).astype(np.uint8)
        y, x = (side - nh) // 2, i * side + (side - nw) // 2
        panel[y:y + nh, x:x + nw] = small
    return panel


def run(images: list[np.ndarray], masks: list[np.ndarray], faces: Faces | None, settings: InpaintSettings,
        fns: SamplingFns, progress=None, identity_line: str | None = None) -> InpaintResult:
    """Inpaint every planned face of every image, ``batch_count`` times with consecutive seeds.

    ``progress`` (optional, ``.update(n)``) advances once per sampler step; in ComfyUI the sampler's
    own preview callback drives the editor's bar instead. An interrupt raised from any callback
    propagates untouched.
    """
    import torch

    jobs, notes = plan_jobs(images, masks, faces, settings)
    count = max(1, int(settings.batch_count))
    result = InpaintResult(images=[], previews=[])
    n_jobs = sum(len(j) for j in jobs)
    result.lines.append(f"{n_jobs} face region(s) in {len(images)} image(s), {count} variation(s), "
                        f"{settings.steps} steps at denoise {settings.denoise:g}, seeds {settings.seed}"
                        + (f"..{settings.seed + count - 1}" if count > 1 else "") + ".")
    if identity_line:
        result.lines.append(identity_line)
    for b, image_jobs in enumerate(jobs):
        for job in image_jobs:
            who = f"face {job.face_index}" if job.face_index is not None else "mask region"
            result.lines.append(f"image {b} {who}: {job.region.describe()}")
    result.lines += notes

    steps_seen = [0]

    def make_callback():
        preview = fns.preview_callback()

        def callback(step, x0, x, total_steps):
            if preview is not None:
                preview(step, x0, x, total_steps)
            steps_seen[0] += 1
            if progress is not None:
                progress.update(1)

        return callback

    for b, image in enumerate(images):
        for v in range(count):
            current = image.copy()
            for job in jobs[b]:
                pixels_np, weight_np = ic.crop_for_sampling(current, job.alpha, job.region)
                pixels = torch.from_numpy(pixels_np)[None]
                mask = torch.from_numpy(weight_np)[None, None]
                with torch.no_grad():  # ComfyUI runs nodes in inference mode; outside it, no autograd either
                    positive, negative, latent = condition(fns, pixels, mask)
                    samples = fns.sample(latent, positive, negative, settings.seed + v, make_callback())
                    decoded = fns.decode(samples)
                generated = decoded.reshape(-1, *decoded.shape[-3:])[0].detach().float().cpu().numpy()
                if not np.isfinite(generated).all():
                    raise I2PError(NODE, "vae", "the VAE decoded NaN/inf values, which would paste garbage "
                                   "into the photo (the SDXL VAE in fp16 is the usual cause).",
                                   "start ComfyUI with --fp32-vae or --bf16-vae, or use the sdxl-vae-fp16-fix VAE.")
                before = current
                current = ic.stitch(current, generated, job.alpha, job.region)
                if v == 0:
                    sy, sx = job.region.slices()
                    result.previews.append(_crop_preview(before[sy, sx], current[sy, sx], job.alpha[sy, sx]))
            result.images.append(current)
    result.steps_run = steps_seen[0]
    if n_jobs:
        result.lines.append(f"{result.steps_run} sampler steps run.")
    return result


def identity_text(info: dict | None, steps: int) -> str | None:
    """"identity active in steps a..b of N" from the identity patch's settings on the MODEL."""
    if not info:
        return None
    from ..identity.stop_at import describe

    mode = info.get("mode", "identity")
    weight = info.get("weight")
    head = f"{mode}" + (f" weight {float(weight):g}" if weight is not None else "")
    return f"{head}: " + describe(float(info.get("start_at", 0.0)), float(info.get("stop_at", 1.0)), int(steps)) + "."
