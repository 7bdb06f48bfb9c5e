"""Which kind of diffusion model Face Inpaint is sampling, and what that changes.

Face Inpaint takes any MODEL. An SD-style UNet (SDXL, the RealVisXL inpainting checkpoint) and an
instruction-edit DiT (FLUX.2 [klein], Qwen-Image-Edit) differ in ways that matter to the crop:

- the sampling size must be a multiple of the latent's pixel downscale times the transformer's patch
  size (8 for SDXL, 16 for FLUX.2's 128-channel /16 latent and for Qwen-Image's /8 latent with 2x2
  patches), else the DiT pads and the decoded crop no longer lines up with the photo;
- the 9-channel inpaint conditioning (``concat_latent_image`` / ``concat_mask``) and the identity MODEL
  patch (SDXL attn2 layers) exist only for SD-style UNets: on a DiT they are skipped and the info text
  says so, never applied to the wrong architecture;
- an edit model reads ``reference_latents`` from the conditioning (ComfyUI's ReferenceLatent,
  TextEncodeQwenImageEditPlus). When the user drives it as an edit model (their conditioning already
  carries reference latents) the crop itself is appended as the LAST reference: the edit target. Last,
  so the user's own references keep their indices and a prompt that names "picture 1" / "image 1"
  still means the first image they wired. Without references of their own the DiT is sampled as a
  plain masked img2img of the crop, which is what a non-edit checkpoint of the same class expects.

Which architecture a MODEL is comes from :mod:`core.model_family` (the identity stage refuses DiTs with
the same reading); this module holds what it changes for the crop. No torch, no ComfyUI.
"""
from __future__ import annotations

from ..model_family import ModelFamily


def has_reference_latents(conditioning) -> bool:
    """True when any entry of a CONDITIONING carries ``reference_latents`` (the user wired an edit
    model's reference image through ReferenceLatent or TextEncodeQwenImageEditPlus)."""
    for entry in conditioning or []:
        if isinstance(entry, (list, tuple)) and len(entry) > 1 and isinstance(entry[1], dict):
            if entry[1].get("reference_latents"):
                return True
    return False


def count_reference_latents(conditioning) -> int:
    """How many reference latents the first entry of a CONDITIONING carries (for the info text)."""
    for entry in conditioning or []:
        if isinstance(entry, (list, tuple)) and len(entry) > 1 and isinstance(entry[1], dict):
            return len(entry[1].get("reference_latents") or [])
    return 0


def info_lines(family: ModelFamily, positive, identity_skipped: bool) -> list[str]:
    """What the node did differently for this model, in the words of its info output."""
    if family.unet:
        if family.inpaint_channels:
            return ["inpainting checkpoint: conditioned with the masked image and mask."]
        return ["ordinary checkpoint: latent noise mask."]
    lines = [f"{family.describe()}: latent noise mask; the 9-channel inpaint conditioning is for SD-style "
             "UNets only and was not applied."]
    if family.reference_latents and has_reference_latents(positive):
        n = count_reference_latents(positive)
        lines.append(f"edit model: the crop was appended as reference latent {n + 1} (the edit target) after "
                     f"your {n} reference(s); your references keep their numbers.")
    elif family.reference_latents:
        lines.append("no reference latents in the conditioning: sampled as a masked img2img of the crop. To "
                     "use it as an edit model, wire the source face through ReferenceLatent (FLUX.2) or "
                     "TextEncodeQwenImageEditPlus (Qwen-Image-Edit).")
    if identity_skipped:
        lines.append("identity MODEL patch skipped: it patches SDXL's cross-attention and does nothing "
                     "correct on this architecture. Use the face swap / restore stages for identity.")
    return lines
