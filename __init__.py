"""IP-to-Portrait: a ComfyUI node pack that puts a face identity into a reference photo.

ComfyUI imports this file by path under a mangled module name, so everything inside the pack uses
relative imports. Importing it loads no model and opens no connection.
"""
__version__ = "0.1.0"

if __package__:  # loaded as a package: by ComfyUI from custom_nodes/, by the tests, by `python -m`
    from .core import comfy_adapter
    from .models.manifest import MODEL_FOLDERS
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    comfy_adapter.register_model_folders(MODEL_FOLDERS)
else:
    # Imported as a lone module: pytest does this to the root __init__.py of a checkout whose folder
    # name is no identifier (e.g. "IP-to-Portrait"). Nothing to register then; the tests load the
    # pack the way ComfyUI does (tests/packload.py).
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
