"""I2P Auto Prompt (Gemini): a descriptive inpaint prompt from the face photo, without an API-key widget."""
from __future__ import annotations

import hashlib
import json

from ..core.prompt import auto_prompt

_SETTINGS = ("style_hint", "model", "temperature", "prompt_seed", "use_fallback", "timeout_s", "retries",
             "cache_on_disk")


class I2PAutoPromptGemini:
    DESCRIPTION = (
        "Gemini looks at the face photo and writes the positive prompt for the face inpaint: apparent "
        "age, hair, skin tone, face shape, expression, glasses, lighting. No ethnicity labels. The API "
        "key is read from GEMINI_API_KEY / GOOGLE_API_KEY or <ComfyUI>/user/__ip_to_portrait/gemini.json, "
        "never from a widget, so it never lands in a workflow or PNG. Answers are cached by image and "
        "settings; change prompt_seed for a fresh one. When Gemini fails, a local template (gender/age "
        "from I2P faces, hair colour from the hair mask) is used and the status says so."
    )
    CATEGORY = "IP-to-Portrait/prompt"
    FUNCTION = "generate"
    RETURN_TYPES = ("STRING", "STRING", "STRING", "STRING")
    RETURN_NAMES = ("positive", "negative", "description", "status")
    OUTPUT_TOOLTIPS = (
        "Positive prompt for the inpaint: the description, the style hint and quality tags.",
        "Negative prompt (fixed photo-realism negatives).",
        "The description alone, as Gemini (or the local template) wrote it, ethnicity labels removed.",
        "Who produced the prompt: Gemini, the cache (no API call) or the FALLBACK template, and why.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "face_image": ("IMAGE", {"tooltip": "The identity photo to describe (the first image of a batch)."}),
                "style_hint": ("STRING", {"default": "", "multiline": False,
                                          "tooltip": "Added to the prompt and told to Gemini, e.g. 'studio portrait, 85mm'."}),
                "model": ("STRING", {"default": auto_prompt.DEFAULT_MODEL,
                                     "tooltip": "Gemini model id, e.g. gemini-2.5-flash or gemini-2.5-pro."}),
                "temperature": ("FLOAT", {"default": 0.4, "min": 0.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "Higher gives more varied wording; 0 is most repeatable."}),
                "prompt_seed": ("INT", {"default": 0, "min": 0, "max": 2147483647,
                                        "tooltip": "Part of the cache key and sent to Gemini: change it to ask for "
                                                   "a fresh description. (Not named 'seed' so the editor does not "
                                                   "randomize it after every run, which would call the API each time.)"}),
                "use_fallback": ("BOOLEAN", {"default": True,
                                             "tooltip": "On any Gemini failure (no key, timeout, 429, 5xx, blocked, "
                                                        "no network) return a local template prompt instead of "
                                                        "stopping the graph with an error."}),
                "timeout_s": ("INT", {"default": 30, "min": 1, "max": 600,
                                      "tooltip": "Seconds to wait for each Gemini request."}),
                "retries": ("INT", {"default": 2, "min": 0, "max": 5,
                                    "tooltip": "Extra attempts after a 429, 5xx, timeout or refused connection."}),
                "cache_on_disk": ("BOOLEAN", {"default": True,
                                              "tooltip": "Also keep answers in <ComfyUI>/user/__ip_to_portrait/"
                                                         "gemini_cache so they survive a restart."}),
            },
            "optional": {
                "reference_image": ("IMAGE", {"tooltip": "The scene photo the face goes into: Gemini describes its "
                                                         "lighting instead of the face photo's."}),
                "faces": ("I2P_FACES", {"tooltip": "Faces of face_image from I2P face analysis: gender and age "
                                                   "for the fallback template (first selected face)."}),
                "hair_mask": ("MASK", {"tooltip": "Hair mask of face_image from the face-parsing node: hair "
                                                  "colour for the fallback template."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        """Widget settings plus the number of fallback runs so far: after a failure, queuing again
        retries Gemini; after a success, an unchanged graph stays cached. Never depends on the key."""
        settings = {name: kwargs.get(name) for name in _SETTINGS}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"{digest}-{auto_prompt.fallback_count()}"

    def generate(self, face_image, style_hint, model, temperature, prompt_seed, use_fallback, timeout_s, retries,
                 cache_on_disk, reference_image=None, faces=None, hair_mask=None):
        from ..core import images

        node = auto_prompt.NODE_NAME
        face_batch = images.image_input(face_image, node, "face_image")
        reference = None
        if reference_image is not None:
            reference = images.image_input(reference_image, node, "reference_image")[0]
        mask = None
        if hair_mask is not None:
            mask = images.mask_input(hair_mask, node, "hair_mask", "connect the face-parsing node's hair_mask.")[0]
        face, notes = None, []
        if faces is not None and len(faces) > 0 and faces.for_image(0).faces:
            faceset = faces.for_image(0)
            if tuple(faceset.image_size) == face_batch[0].shape[:2]:
                face = faceset.faces[0]
            else:  # gender/age of someone in another picture would describe the wrong person
                notes.append(f"faces ignored: detected on a {faceset.image_size[1]}x{faceset.image_size[0]} "
                             f"image, face_image is {face_batch[0].shape[1]}x{face_batch[0].shape[0]}")

        settings = auto_prompt.Settings(model=model, temperature=float(temperature), style_hint=style_hint,
                                        seed=int(prompt_seed), timeout_s=float(timeout_s), retries=int(retries))
        result = auto_prompt.generate_prompt(face_batch[0], settings, reference_image=reference, face=face,
                                             hair_mask=mask, use_fallback=bool(use_fallback),
                                             disk_cache=bool(cache_on_disk), node=node)
        status = result.status
        if result.source != "fallback":
            notes = []  # the faces input only matters to the template
        if len(face_batch) > 1:
            notes.append(f"described the first of {len(face_batch)} images")
        if notes:
            status += " (" + "; ".join(notes) + ")"
        text = f"{status}\n\npositive: {result.positive}\n\nnegative: {result.negative}"
        return {"ui": {"text": [text]}, "result": (result.positive, result.negative, result.description, status)}


NODE_CLASS_MAPPINGS = {"I2PAutoPromptGemini": I2PAutoPromptGemini}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PAutoPromptGemini": "I2P Auto Prompt (Gemini)"}
