"""I2P Model Licenses: what each model file may be used for, from the manifest, inside the editor."""
from __future__ import annotations

from ..core import comfy_adapter
from ..models import manifest

ALL = "all models"


class I2PModelLicenses:
    DESCRIPTION = (
        "Shows every model file IP-to-Portrait can use: its folder, whether it is installed, its licence "
        "whether commercial use is allowed, and training-data caveats. inswapper_128, buffalo_l and IP-Adapter "
        "FaceID are non-commercial. I2P License Check does the same for the graph that is running."
    )
    CATEGORY = "IP-to-Portrait/models"
    FUNCTION = "report"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("licenses",)
    OUTPUT_TOOLTIPS = ("One line per model: file, installed or missing, licence, commercial use.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ([ALL] + [m.id for m in manifest.MODELS],
                          {"default": ALL, "tooltip": "Which manifest entry to show, or all of them."}),
                "only_non_commercial": ("BOOLEAN", {"default": False,
                                                    "tooltip": "List only models whose licence forbids commercial use."}),
            }
        }

    def report(self, model: str, only_non_commercial: bool):
        entries = manifest.MODELS if model == ALL else (manifest.by_id(model),)
        lines = []
        for m in entries:
            if only_non_commercial and m.commercial:
                continue
            installed = comfy_adapter.find_model(m.folder, m.filename) is not None
            state = "installed" if installed else "missing"
            lines.append(f"[{state}] models/{m.folder}/{m.filename} - {m.license_line.split(': ', 1)[1]}")
        text = "\n".join(lines) if lines else "no model matches"
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"I2PModelLicenses": I2PModelLicenses}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PModelLicenses": "I2P Model Licenses"}
