"""Stage logic: plain torch/numpy/onnx code that needs no ComfyUI (ComfyUI is reached only through
:mod:`.comfy_adapter`)."""
