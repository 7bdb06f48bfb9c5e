"""I2P License Check: what the running graph loads and whether it may be used commercially.

It reads the whole prompt ComfyUI is executing (hidden ``PROMPT`` input) and passes the photos through,
so wiring the photos through it makes every stage that works on them wait for it: in mode
``require commercial`` a graph with a non-commercial or unknown file stops here, before any face is
detected or any step sampled. (Loaders with no inputs, like the checkpoint loader, are scheduled by
ComfyUI on its own and may load before the check; loading is not using. As an output node the check is
picked as soon as its photos are loaded.)
"""
from __future__ import annotations

from ..core.errors import I2PError

NODE = "I2P License Check"
MODES = ["warn", "require commercial"]


class I2PLicenseCheck:
    DESCRIPTION = (
        "Lists every model file this graph loads (the pack's loaders and ComfyUI's core loaders: checkpoint, "
        "LoRA, CLIP vision, upscale, VAE, ...) with its licence from the IP-to-Portrait manifest, 'unknown' for "
        "files the manifest does not know, and a verdict. warn: report and continue. require commercial: stop "
        "the run, naming each node and file that is non-commercial or unknown. Wire the photos through it so "
        "it runs before the heavy nodes."
    )
    CATEGORY = "IP-to-Portrait/models"
    FUNCTION = "check"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("images", "images_2", "images_3", "report")
    OUTPUT_TOOLTIPS = (
        "'images', unchanged (connect the stages to this, not to the photo loader, so they run after the check).",
        "'images_2', unchanged (empty if not connected).",
        "'images_3', unchanged (empty if not connected).",
        "One line per model file: node, file, licence; then the verdict.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "A photo the graph works on; passed through unchanged."}),
                "mode": (MODES, {"default": "warn",
                                 "tooltip": "warn: report and continue (cached like any node: the report refreshes "
                                            "when the photos or mode change). require commercial: checked on "
                                            "every run; stops the run if any file is non-commercial or of "
                                            "unknown licence."}),
            },
            "optional": {
                "images_2": ("IMAGE", {"tooltip": "Another photo (e.g. the face photo), passed through unchanged."}),
                "images_3": ("IMAGE", {"tooltip": "A third photo, passed through unchanged."}),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, mode="warn", **_):
        """ComfyUI caches a node whose inputs did not change, and the rest of the graph is not among this
        node's inputs: a cached gate would let a newly added non-commercial loader through. So 'require
        commercial' re-checks on every run (NaN never equals itself); the price is that the nodes after it
        are not served from ComfyUI's cache between runs. 'warn' keeps caching: its report refreshes when
        the photos or the mode change."""
        return float("nan") if mode == "require commercial" else mode

    def check(self, images, mode, images_2=None, images_3=None, prompt=None, unique_id=None):
        from ..models.audit import audit

        if mode not in MODES:
            raise I2PError(NODE, "mode", f"unknown mode '{mode}'.", f"choose one of {', '.join(MODES)}.")
        if not isinstance(prompt, dict) or not prompt:
            if mode == "require commercial":
                raise I2PError(NODE, None, "no running graph was handed to the check (ComfyUI passes it as the "
                               "hidden PROMPT input), so nothing can be verified.",
                               "run the graph in ComfyUI, or set mode to 'warn'.")
            text = "VERDICT: nothing checked - no running graph was handed to the check."
            return {"ui": {"text": [text]}, "result": (images, images_2, images_3, text)}
        result = audit(prompt, skip=(str(unique_id),) if unique_id is not None else ())
        text = result.report()
        if mode == "require commercial" and not result.commercial:
            offending = "; ".join(f"{f.where}: {f.file} ({f.verdict})" for f in result.offending)
            raise I2PError(NODE, "mode", f"this graph is not cleared for commercial use: {offending}.",
                           "replace those nodes or files with ones the manifest marks commercial (docs/models.md, "
                           "'Commercial use'; the commercial_portrait workflow uses only such files), or set mode "
                           "to 'warn'.")
        return {"ui": {"text": [text]}, "result": (images, images_2, images_3, text)}


NODE_CLASS_MAPPINGS = {"I2PLicenseCheck": I2PLicenseCheck}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PLicenseCheck": "I2P License Check"}
