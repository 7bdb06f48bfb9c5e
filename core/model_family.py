"""Which kind of diffusion model a ComfyUI MODEL is: an SD-style UNet (SDXL, SD 1.5) or a DiT/flow
model (FLUX.2 [klein], Qwen-Image-Edit, FLUX.1 ...), with the numbers the pack's stages need.

Ground module, one reading for every stage: Face Inpaint sizes and conditions its crop by it
(core/inpaint/family.py), and I2P Apply Identity refuses a MODEL whose architecture its SDXL
cross-attention patch cannot fit (core/identity/apply.py). Pure logic over
:func:`core.comfy_adapter.model_traits`; no torch, no ComfyUI.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import comfy_adapter

#: ComfyUI's ``image_model`` / config class names -> the names users know.
DISPLAY_NAMES = {"flux2": "FLUX.2", "qwen_image": "Qwen-Image", "flux": "FLUX.1", "SDXL": "SDXL",
                 "SDXLRefiner": "SDXL refiner", "SD15": "SD 1.5", "SDXL_instructpix2pix": "SDXL"}
UNET_CLASSES = ("UNetModel", "")  # "" = a duck-typed model without a diffusion_model (tests, old wrappers)


@dataclass(frozen=True)
class ModelFamily:
    name: str  # what the info text calls it: "SDXL", "FLUX.2", "Qwen-Image", or ComfyUI's class name
    latent_channels: int
    multiple: int  # the sampled crop's width and height are multiples of this (pixels)
    unet: bool  # SD-style UNet: the 9-channel inpaint conditioning and the identity patch apply
    reference_latents: bool  # the model consumes reference_latents (edit models)
    inpaint_channels: bool  # a 9-channel inpainting UNet (concat keys mask + masked_image)

    def describe(self) -> str:
        return f"{self.name} ({self.latent_channels}-channel latent, sizes in multiples of {self.multiple} px)"


def from_traits(traits: dict) -> ModelFamily:
    """The family of a model from its :func:`comfy_adapter.model_traits` dict."""
    unet = traits.get("diffusion_class", "") in UNET_CLASSES and not traits.get("image_model")
    keys = tuple(traits.get("concat_keys", ()))
    key = traits.get("image_model") or traits.get("config_class") or traits.get("model_class") or "model"
    name = DISPLAY_NAMES.get(key, key)
    multiple = max(8, int(traits.get("downscale", 8)) * int(traits.get("patch_size", 1)))
    return ModelFamily(name=name, latent_channels=int(traits.get("latent_channels", 4)), multiple=multiple,
                       unet=unet, reference_latents=bool(traits.get("reference_latents")),
                       inpaint_channels=unet and "mask" in keys and "masked_image" in keys)


def of_model(model) -> ModelFamily:
    """The family of a ComfyUI MODEL (a ModelPatcher, or a duck-typed fake)."""
    return from_traits(comfy_adapter.model_traits(model))
