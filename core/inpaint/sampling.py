"""ComfyUI's own sampler, VAE and conditioning helpers wrapped as :class:`SamplingFns`.

Sampling goes through ``comfy.sample.sample`` exactly as the KSampler node does, so every sampler,
scheduler, LoRA and MODEL patch (the identity patch included) applies; step previews come from
``latent_preview``; cancel is ComfyUI's interrupt raised from the progress hook inside the callback.
"""
from __future__ import annotations

from .. import comfy_adapter
from ..errors import I2PError
from ..identity.contract import identity_info, with_crop_mask, without_identity_patch  # noqa: F401 (the node reads them here)
from .family import has_reference_latents, of_model
from .flow import NODE, SamplingFns

FALLBACK_SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc"]
FALLBACK_SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "beta"]


def sampler_names() -> list[str]:
    samplers = comfy_adapter.comfy_module("comfy.samplers")
    return list(samplers.KSampler.SAMPLERS) if samplers is not None else FALLBACK_SAMPLERS


def scheduler_names() -> list[str]:
    samplers = comfy_adapter.comfy_module("comfy.samplers")
    return list(samplers.KSampler.SCHEDULERS) if samplers is not None else FALLBACK_SCHEDULERS


def is_inpaint_model(model) -> bool:
    """A UNet with extra input channels for the mask and the masked image (RealVisXL V4.0 inpainting
    and every other 9-channel checkpoint): ComfyUI marks them with these concat keys."""
    keys = getattr(getattr(model, "model", None), "concat_keys", ()) or ()
    return "mask" in keys and "masked_image" in keys


def comfy_sampling(model, vae, positive, negative, *, steps: int, cfg: float, sampler_name: str,
                   scheduler: str, denoise: float) -> SamplingFns:
    """The model's family (core/inpaint/family.py) decides the inpaint conditioning and whether the crop
    becomes the edit target's reference latent; the node strips the identity patch for non-UNets."""
    family = of_model(model)
    sample_mod = comfy_adapter.comfy_module("comfy.sample")
    if sample_mod is None:
        raise I2PError(NODE, "model", "ComfyUI's sampler is not available in this process.",
                       "run this node inside ComfyUI.")
    helpers = comfy_adapter.comfy_module("node_helpers")
    utils = comfy_adapter.comfy_module("comfy.utils")

    def decode(latent):
        images = vae.decode(latent)
        if images.ndim == 5:
            images = images.reshape(-1, *images.shape[-3:])
        return images

    def sample(latent: dict, pos, neg, seed: int, callback):
        crop_model = with_crop_mask(model, latent.get("noise_mask"))
        latent_image = sample_mod.fix_empty_latent_channels(crop_model, latent["samples"])
        noise = sample_mod.prepare_noise(latent_image, seed)
        disable_pbar = not getattr(utils, "PROGRESS_BAR_ENABLED", True)
        return sample_mod.sample(crop_model, noise, steps, cfg, sampler_name, scheduler, pos, neg, latent_image,
                                 denoise=denoise, noise_mask=latent.get("noise_mask"), callback=callback,
                                 disable_pbar=disable_pbar, seed=seed)

    return SamplingFns(
        encode=vae.encode,
        decode=decode,
        sample=sample,
        positive=positive,
        negative=negative,
        inpaint_model=family.unet and is_inpaint_model(model),
        reference_crop=(not family.unet and family.reference_latents
                        and (has_reference_latents(positive) or has_reference_latents(negative))),
        set_values=getattr(helpers, "conditioning_set_values", None),
        preview_callback=lambda: comfy_adapter.sampler_callback(model, steps),
    )
