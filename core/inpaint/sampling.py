"""ComfyUI's own sampler, VAE and conditioning helpers wrapped as :class:`SamplingFns`.

Sampling goes through ``comfy.sample.sample`` exactly as the KSampler node does, so every sampler,
scheduler, LoRA and MODEL patch (the identity patch included) applies; step previews come from
``latent_preview``; cancel is ComfyUI's interrupt raised from the progress hook inside the callback.
"""
from __future__ import annotations

from .. import comfy_adapter
from ..errors import I2PError
from ..identity.contract import identity_info, with_crop_mask, without_identity_patch  # noqa: F401 (the node reads them here)
from ..model_family import of_model
from .family import has_reference_latents
from .flow import NODE, SamplingFns

FALLBACK_SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc"]
FALLBACK_SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "beta"]
#: FLUX.2's own schedule (ComfyUI's Flux2Scheduler node): its shift grows with the image's token count, so
#: it is computed here for each crop's actual latent size, which a Flux2Scheduler wired by hand with a
#: fixed width/height cannot know. Offered beside ComfyUI's named schedulers.
FLUX2_SCHEDULER = "flux2"


def sampler_names() -> list[str]:
    samplers = comfy_adapter.comfy_module("comfy.samplers")
    return list(samplers.KSampler.SAMPLERS) if samplers is not None else FALLBACK_SAMPLERS


def scheduler_names() -> list[str]:
    samplers = comfy_adapter.comfy_module("comfy.samplers")
    names = list(samplers.KSampler.SCHEDULERS) if samplers is not None else list(FALLBACK_SCHEDULERS)
    return names + [FLUX2_SCHEDULER]


def tail_sigmas(schedule, steps: int, denoise: float):
    """The last ``steps + 1`` sigmas of a schedule stretched to ``steps / denoise`` steps: how ComfyUI's
    KSampler turns denoise < 1 into a partial schedule, applied to a schedule it does not name."""
    total = steps if denoise >= 0.9999 else max(steps, int(steps / max(denoise, 1e-4)))
    return schedule(total)[-(steps + 1):]


def _flux2_schedule(family, scheduler: str):
    """ComfyUI's FLUX.2 sigma function, or None for a named scheduler; a clear error where it cannot apply."""
    if scheduler != FLUX2_SCHEDULER:
        return None
    if family.name != "FLUX.2":
        raise I2PError(NODE, "scheduler", f"'{FLUX2_SCHEDULER}' is FLUX.2's resolution-aware schedule, but the "
                       f"model is {family.describe()}.",
                       "pick one of ComfyUI's named schedulers ('simple' for flow models, 'karras' for SDXL).")
    nodes_flux = comfy_adapter.comfy_module("comfy_extras.nodes_flux")
    schedule = getattr(nodes_flux, "get_schedule", None)
    if schedule is None:
        raise I2PError(NODE, "scheduler", "this ComfyUI has no FLUX.2 schedule (comfy_extras.nodes_flux.get_schedule).",
                       "update ComfyUI, or pick 'simple'.")
    return schedule


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
    flux2_schedule = _flux2_schedule(family, scheduler)
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
        if flux2_schedule is not None:  # Flux2Scheduler's sigmas for this crop's token count (w*h/16^2)
            tokens = int(latent_image.shape[-1] * latent_image.shape[-2])
            sigmas = tail_sigmas(lambda n: flux2_schedule(n, tokens), steps, denoise)
            sampler = comfy_adapter.comfy_module("comfy.samplers").sampler_object(sampler_name)
            return sample_mod.sample_custom(crop_model, noise, cfg, sampler, sigmas, pos, neg, latent_image,
                                            noise_mask=latent.get("noise_mask"), callback=callback,
                                            disable_pbar=disable_pbar, seed=seed)
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
