"""The whole face-inpaint flow with a fake VAE and a fake sampler (no checkpoint): placement,
bit-exact background, several faces, batches, variations with consecutive seeds, inpainting-model
conditioning, cancel, progress and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from packload import pack_module

fi = pack_module("core.inpaint.flow")
ft = pack_module("core.faces.types")
errors = pack_module("core.errors")


def disc(h, w, cx, cy, r):
    ys, xs = np.mgrid[0:h, 0:w]
    return ((xs - cx) ** 2 + (ys - cy) ** 2 <= r * r).astype(np.float32)


def face_at(cx, cy, size):
    s = size / 2
    kps = np.array([[cx - s / 3, cy - s / 4], [cx + s / 3, cy - s / 4], [cx, cy], [cx - s / 4, cy + s / 3],
                    [cx + s / 4, cy + s / 3]], np.float32)
    return ft.Face(bbox=np.array([cx - s, cy - s, cx + s, cy + s], np.float32), kps=kps, det_score=0.9)


class FakeBackend:
    """Fake VAE: latent = 8x8 average pool of the pixels (3 channels) plus a zero channel; decode is
    nearest upsampling. Fake sampler: returns a flat latent whose colour encodes the seed, calling
    the step callback once per step like ComfyUI's sampler."""

    def __init__(self, steps=4, inpaint_model=False, identity=False, interrupt_at=None, exc=KeyboardInterrupt):
        self.steps = steps
        self.inpaint_model = inpaint_model
        self.identity = identity
        self.interrupt_at = interrupt_at
        self.exc = exc
        self.calls = []  # (seed, latent shape, positive)
        self.preview_steps = 0

    @staticmethod
    def colour(seed):
        return (seed % 7 + 1) / 10.0

    def encode(self, pixels):
        x = pixels.permute(0, 3, 1, 2)
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        return torch.cat([pooled, torch.zeros_like(pooled[:, :1])], dim=1)

    def decode(self, latent):
        return torch.nn.functional.interpolate(latent[:, :3], scale_factor=8, mode="nearest").permute(0, 2, 3, 1)

    def sample(self, latent, positive, negative, seed, callback):
        self.calls.append((seed, tuple(latent["samples"].shape), positive, latent))
        for i in range(self.steps):
            callback(i, latent["samples"], latent["samples"], self.steps)
        return torch.full_like(latent["samples"], self.colour(seed))

    def preview(self):
        def cb(step, x0, x, total):
            self.preview_steps += 1
            if self.interrupt_at is not None and step == self.interrupt_at:
                raise self.exc("cancelled")
        return cb

    def fns(self):
        return fi.SamplingFns(encode=self.encode, decode=self.decode, sample=self.sample,
                              positive=[[torch.zeros(1, 2, 4), {"pooled_output": torch.zeros(1, 4)}]],
                              negative=[[torch.zeros(1, 2, 4), {}]], inpaint_model=self.inpaint_model,
                              preview_callback=self.preview)


class Counter:
    def __init__(self):
        self.n = 0

    def update(self, n=1, preview=None):
        self.n += n


def couple(h=360, w=640):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.maximum(disc(h, w, 40, 60, 30), disc(h, w, 500, 250, 45))  # one face at the border
    faces = ft.Faces([ft.FaceSet((h, w), [face_at(500, 250, 90), face_at(40, 60, 60)])])
    return image, mask, faces


def test_two_faces_are_placed_and_background_is_bit_exact():
    image, mask, faces = couple()
    settings = fi.InpaintSettings(seed=3, steps=4, target_size=256, blend=8)
    backend = FakeBackend(steps=4)
    progress = Counter()
    result = fi.run([image], [mask], faces, settings, backend.fns(), progress=progress)
    out = result.images[0]
    assert len(result.images) == 1 and out.shape == image.shape and out.dtype == np.uint8
    jobs, _ = fi.plan_jobs([image], [mask], faces, settings)
    zone = np.zeros(mask.shape, bool)
    for job in jobs[0]:
        zone |= job.alpha > 0
    assert np.array_equal(out[~zone], image[~zone])
    colour = round(FakeBackend.colour(3) * 255)
    core = mask >= 0.5
    assert np.abs(out[core].astype(int) - colour).max() <= 1  # both faces, at their places
    assert len(backend.calls) == 2 and len(result.previews) == 2
    assert all(shape[0] == 1 and shape[1] == 4 for _, shape, _, _ in backend.calls)
    assert progress.n == 8 and result.steps_run == 8 and backend.preview_steps == 8
    assert "image 0 face 0: crop" in result.text and "image 0 face 1: crop" in result.text
    assert result.previews[0].shape == (384, 768, 3)


def test_sampling_size_is_the_target_and_a_multiple_of_eight():
    image, mask, faces = couple()
    backend = FakeBackend()
    fi.run([image], [mask], faces, fi.InpaintSettings(target_size=512, blend=8), backend.fns())
    for _, shape, _, latent in backend.calls:
        assert max(shape[2], shape[3]) * 8 == 512  # the face's crop was enlarged to the target
        assert latent["noise_mask"].shape[-2:] == (shape[2] * 8, shape[3] * 8)


def test_batch_count_uses_consecutive_seeds_and_batch_images():
    image, mask, faces = couple()
    image2 = np.ascontiguousarray(image[:, ::-1])
    settings = fi.InpaintSettings(seed=10, steps=2, batch_count=3, target_size=256, blend=8)
    backend = FakeBackend(steps=2)
    result = fi.run([image, image2], [mask], faces, settings, backend.fns())
    assert len(result.images) == 6  # image-major: 3 variations of image 1, then of image 2
    assert [c[0] for c in backend.calls] == [10, 10, 11, 11, 12, 12] * 2
    core = mask >= 0.5
    for v in range(3):
        assert np.abs(result.images[v][core].astype(int) - round(FakeBackend.colour(10 + v) * 255)).max() <= 1
    # variation 1 of seed 10 is exactly what seed 11 gives on its own
    single = fi.run([image], [mask], faces, fi.InpaintSettings(seed=11, steps=2, target_size=256, blend=8),
                    FakeBackend(steps=2).fns())
    assert np.array_equal(single.images[0], result.images[1])
    jobs, _ = fi.plan_jobs([image2], [mask], faces, settings)
    zone = (jobs[0][0].alpha > 0) | (jobs[0][1].alpha > 0)
    for out in result.images[3:]:
        assert np.array_equal(out[~zone], image2[~zone])
    assert "seeds 10..12" in result.text


def test_inpainting_model_is_conditioned_like_inpaint_model_conditioning():
    image, mask, faces = couple()
    backend = FakeBackend(inpaint_model=True)
    fi.run([image], [mask], faces, fi.InpaintSettings(target_size=256, blend=8), backend.fns())
    seed, shape, positive, latent = backend.calls[0]
    extra = positive[0][1]
    assert "pooled_output" in extra  # existing conditioning values are kept
    assert extra["concat_mask"] is latent["noise_mask"]
    concat = extra["concat_latent_image"]
    assert concat.shape == latent["samples"].shape
    m = torch.nn.functional.avg_pool2d(latent["noise_mask"], 8)[0, 0]
    inside = m >= 0.999  # latent cells fully inside the mask see grey (0.5), not the face
    assert torch.allclose(concat[0, :3][:, inside], torch.tensor(0.5))
    outside = m == 0
    assert torch.allclose(concat[0, :3][:, outside], latent["samples"][0, :3][:, outside])
    plain = FakeBackend(inpaint_model=False)
    fi.run([image], [mask], faces, fi.InpaintSettings(target_size=256, blend=8), plain.fns())
    assert "concat_latent_image" not in plain.calls[0][2][0][1]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, type("InterruptProcessingException", (BaseException,), {})])
def test_cancel_from_the_step_callback_propagates(exc):
    image, mask, faces = couple()
    backend = FakeBackend(steps=5, interrupt_at=2, exc=exc)
    with pytest.raises(exc):
        fi.run([image], [mask], faces, fi.InpaintSettings(target_size=256, blend=8), backend.fns())
    assert len(backend.calls) == 1 and backend.preview_steps == 3


def test_empty_mask_is_a_documented_no_op():
    image, mask, faces = couple()
    backend = FakeBackend()
    result = fi.run([image], [np.zeros_like(mask)], faces, fi.InpaintSettings(batch_count=2), backend.fns())
    assert backend.calls == []
    assert len(result.images) == 2 and all(np.array_equal(i, image) for i in result.images)
    assert "mask is empty, image returned unchanged" in result.text


def test_bad_input_fails_before_sampling_with_a_clear_message():
    image, mask, faces = couple()
    backend = FakeBackend()
    s = fi.InpaintSettings()
    with pytest.raises(errors.I2PError, match=r"\[I2P Face Inpaint\] input 'mask'.*whole image.*Fix:"):
        fi.run([image], [np.ones_like(mask)], faces, s, backend.fns())
    with pytest.raises(errors.I2PError, match=r"input 'mask'.*640x300 but image 0 is 640x360"):
        fi.run([image], [mask[:300]], faces, s, backend.fns())
    other = ft.Faces([ft.FaceSet((720, 1280), faces.sets[0].faces)])
    with pytest.raises(errors.I2PError, match=r"input 'faces'.*1280x720.*Fix:"):
        fi.run([image], [mask], other, s, backend.fns())
    three = ft.Faces([faces.sets[0]] * 3)
    with pytest.raises(errors.I2PError, match="input 'faces'"):
        fi.run([image, image], [mask], three, s, backend.fns())
    with pytest.raises(errors.I2PError, match="input 'mask'"):
        fi.run([image, image, image], [mask, mask], faces, s, backend.fns())
    assert backend.calls == []


def test_mask_without_faces_is_one_region_and_face_without_mask_is_skipped():
    image, mask, faces = couple()
    backend = FakeBackend()
    result = fi.run([image], [mask], None, fi.InpaintSettings(target_size=256, blend=8), backend.fns())
    assert len(backend.calls) == 1 and "inpainted as one region" in result.text
    left_only = disc(*mask.shape, 40, 60, 30)
    backend = FakeBackend()
    result = fi.run([image], [left_only], faces, fi.InpaintSettings(target_size=256, blend=8), backend.fns())
    assert len(backend.calls) == 1 and "face 0: no mask pixels near this face, skipped" in result.text


def test_identity_line_reports_active_steps():
    text = fi.identity_text({"mode": "faceid_plus_v2", "weight": 0.8, "start_at": 0.0, "stop_at": 0.5}, 20)
    assert "steps 1..10 of 20" in text and "faceid_plus_v2" in text
    assert fi.identity_text(None, 20) is None


def test_nan_from_the_vae_is_a_clear_error_not_garbage():
    image, mask, faces = couple()
    backend = FakeBackend()
    fns = backend.fns()
    fns.decode = lambda latent: torch.full((1, latent.shape[-2] * 8, latent.shape[-1] * 8, 3), float("nan"))
    with pytest.raises(errors.I2PError, match=r"input 'vae'.*NaN.*--fp32-vae"):
        fi.run([image], [mask], faces, fi.InpaintSettings(target_size=256, blend=8), fns)
