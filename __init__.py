"""IP-to-Portrait: a ComfyUI node pack that puts a face identity into a reference photo.

ComfyUI imports this file by path under a mangled module name, so everything inside the pack uses
relative imports. Importing it loads no model and opens no connection.
"""
from .core import comfy_adapter
from .models.manifest import MODEL_FOLDERS
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__version__ = "0.1.0"

comfy_adapter.register_model_folders(MODEL_FOLDERS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
