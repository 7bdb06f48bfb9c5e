"""Face inpaint and pre-paste nodes: thin wrappers over core/face_inpaint.py and core/prepaste.py."""
from __future__ import annotations

from ..core import comfy_adapter
from ..core.faces.types import FACES_TYPE

CATEGORY = "IP-to-Portrait/inpaint"


class I2PFaceInpaint:
    DESCRIPTION = (
        "Inpaints each selected face at a useful resolution: crops a context region around the face's "
        "mask, scales it to the target size, samples with ComfyUI's own sampler (any sampler, scheduler, "
        "LoRA or MODEL patch, step previews, cancel), and pastes the result back with a feathered edge. "
        "Pixels outside the mask's blend zone are bit-identical to the input. A 9-channel inpainting "
        "checkpoint (RealVisXL V4.0 inpainting) is recognised from the MODEL and conditioned like "
        "InpaintModelConditioning; other checkpoints get a latent noise mask. Several faces (a couple) "
        "are done in one call. Use denoise ~0.3 on the face swap's seam mask, ~0.65 after Face Pre-Paste. "
        "Edit models (FLUX.2 [klein], Qwen-Image-Edit): wire the source face into the conditioning with "
        "ReferenceLatent / TextEncodeQwenImageEditPlus; the crop is added as the last reference (the edit "
        "target), and the SDXL-only inpaint channels and identity patch are skipped."
    )
    CATEGORY = CATEGORY
    FUNCTION = "inpaint"
    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("image", "crop_preview", "info")
    OUTPUT_TOOLTIPS = (
        "The input images with the faces inpainted; batch_count variations per input image, image by image.",
        "For each face (first variation): the crop as sampled with the blend zone tinted red | the result.",
        "What was done: crop sizes, sampling size, steps run, and the identity patch's active steps.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        from ..core.inpaint import sampling

        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model: SDXL (usually the identity-patched one; a 9-channel inpainting checkpoint is detected automatically) or an edit DiT such as FLUX.2 [klein] or Qwen-Image-Edit (sizes in multiples of 16; SDXL-only parts are skipped and the info says so)."}),
                "positive": ("CONDITIONING", {"tooltip": "Positive prompt conditioning."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt conditioning."}),
                "vae": ("VAE", {"tooltip": "The VAE of the checkpoint, used to encode each crop and decode the result."}),
                "image": ("IMAGE", {"tooltip": "The photo(s) to inpaint faces in."}),
                "mask": ("MASK", {"tooltip": "Where to inpaint, from the face-parsing node (one mask for the batch or one per image). An empty mask returns the image unchanged."}),
                "faces": (FACES_TYPE, {"tooltip": "The selected faces of the same image(s); the mask is split between them and each face gets its own crop."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed; variation i uses seed + i."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": "Sampler steps run per face."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale."}),
                "sampler_name": (sampling.sampler_names(), {"tooltip": "Sampling algorithm (ComfyUI's list)."}),
                "scheduler": (sampling.scheduler_names(), {"tooltip": "Noise schedule: ComfyUI's list, plus 'flux2' for FLUX.2 models (what ComfyUI's Flux2Scheduler node computes, here for each crop's own size)."}),
                "denoise": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "How much of the face is re-generated: ~0.3 to refine a swap, ~0.5 for identity injection, 0.65 after pre-paste, 1.0 to replace."}),
                "target_size": ("INT", {"default": 1024, "min": 256, "max": 2048, "step": 64,
                                        "tooltip": "Longer side of the crop as sampled (SDXL: 1024). Never below the crop's own resolution; the sampled area is capped at (2 x target) squared pixels."}),
                "context": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 6.0, "step": 0.1,
                                      "tooltip": "Crop side as a multiple of the face size: more context gives the model more of the head, hair and light to match."}),
                "blend": ("INT", {"default": 16, "min": 0, "max": 256, "step": 1,
                                  "tooltip": "Width in image pixels of the feathered band around the mask where the result fades into the original. Everything beyond it is bit-identical to the input."}),
                "batch_count": ("INT", {"default": 1, "min": 1, "max": 8,
                                        "tooltip": "Variations per image, with consecutive seeds."}),
            }
        }

    def inpaint(self, model, positive, negative, vae, image, mask, faces, seed, steps, cfg, sampler_name,
                scheduler, denoise, target_size, context, blend, batch_count):
        from ..core.inpaint import flow as face_inpaint
        from ..core import images
        from ..core import model_family
        from ..core.inpaint import family as families
        from ..core.inpaint import sampling

        family = model_family.of_model(model)
        identity_skipped = False
        if not family.unet:  # the identity patch is SDXL attn2 only: never sample a DiT with it
            model, identity_skipped = sampling.without_identity_patch(model)
        settings = face_inpaint.InpaintSettings(seed=int(seed), steps=int(steps), denoise=float(denoise),
                                                target_size=int(target_size), context=float(context),
                                                blend=int(blend), batch_count=int(batch_count),
                                                multiple=family.multiple)
        rgb = images.image_input(image, face_inpaint.NODE, "image")
        masks = images.mask_input(mask, face_inpaint.NODE, "mask")
        face_inpaint.plan_jobs(rgb, masks, faces, settings)  # bad input fails here, before the model loads
        fns = sampling.comfy_sampling(model, vae, positive, negative, steps=int(steps), cfg=float(cfg),
                                      sampler_name=sampler_name, scheduler=scheduler, denoise=float(denoise))
        identity = face_inpaint.identity_text(sampling.identity_info(model), int(steps))
        result = face_inpaint.run(rgb, masks, faces, settings, fns, progress=None, identity_line=identity)
        result.lines[1:1] = families.info_lines(family, positive, identity_skipped)
        if scheduler == sampling.FLUX2_SCHEDULER:
            result.lines.insert(1, "scheduler flux2: FLUX.2's resolution-aware sigmas (ComfyUI's Flux2Scheduler) "
                                   "for each crop's own size.")
        previews = result.previews or [rgb[0][:64, :64] * 0]
        text = result.text
        out = images.from_rgb_uint8(result.images).to(comfy_adapter.intermediate_device())
        preview = images.from_rgb_uint8(previews).to(comfy_adapter.intermediate_device())
        return {"ui": {"text": [text]}, "result": (out, preview, text)}


class I2PFacePrePaste:
    DESCRIPTION = (
        "Pre-paste (optional, before Face Inpaint): warps the source face onto each target face with a "
        "similarity transform from the 5 landmarks, matches its colour to the target inside the mask, and "
        "blends it in with the parsing mask. Then run Face Inpaint on the result at denoise ~0.65 so the "
        "model keeps the identity and repairs the seams. Pixels outside the mask are left untouched."
    )
    CATEGORY = CATEGORY
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "info")
    OUTPUT_TOOLTIPS = ("The target image(s) with the source face pasted in; feed into Face Inpaint (denoise 0.65).",
                       "Which source face went where, and the landmark fit error in pixels.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The target photo(s)."}),
                "mask": ("MASK", {"tooltip": "Face-parsing mask of the target faces: where the source face is blended in."}),
                "faces": (FACES_TYPE, {"tooltip": "Target faces (landmarks) of the same image(s)."}),
                "source_image": ("IMAGE", {"tooltip": "The photo with the identity to paste."}),
                "source_faces": (FACES_TYPE, {"tooltip": "Faces of the source photo: source face i goes to target face i; a single source face goes to every target face."}),
                "color_match": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                          "tooltip": "How far the pasted face's colour (Lab mean and contrast inside the mask) is matched to the target's skin; 0 keeps the source colours."}),
                "feather": ("INT", {"default": 8, "min": 0, "max": 64,
                                    "tooltip": "Inward softening of the mask edge in pixels (the paste never grows beyond the mask)."}),
            }
        }

    def paste(self, image, mask, faces, source_image, source_faces, color_match, feather):
        from ..core import images
        from ..core.inpaint import prepaste

        node = NODE_DISPLAY_NAME_MAPPINGS["I2PFacePrePaste"]
        out, lines = prepaste.prepaste_batch(images.image_input(image, node, "image"),
                                             images.mask_input(mask, node, "mask"), faces,
                                             images.image_input(source_image, node, "source_image"), source_faces,
                                             float(color_match), int(feather))
        text = "\n".join(lines)
        tensor = images.from_rgb_uint8(out).to(comfy_adapter.intermediate_device())
        return {"ui": {"text": [text]}, "result": (tensor, text)}


NODE_CLASS_MAPPINGS = {"I2PFaceInpaint": I2PFaceInpaint, "I2PFacePrePaste": I2PFacePrePaste}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PFaceInpaint": "I2P Face Inpaint", "I2PFacePrePaste": "I2P Face Pre-Paste"}
