"""Errors a user can act on.

ComfyUI shows an exception's message in the editor. A message from deep inside onnxruntime or torch
tells a user nothing, so stage code raises :class:`I2PError` naming the node, the input and the fix.
"""
from __future__ import annotations


class I2PError(ValueError):
    """A bad input or missing model, described for the person at the graph editor."""

    def __init__(self, node: str, input_name: str | None, problem: str, fix: str | None = None):
        self.node = node
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        where = f"[{node}]" + (f" input '{input_name}'" if input_name else "")
        text = f"{where}: {problem}"
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)


class ModelFileMissing(I2PError):
    """A model file the node needs is not in its folder; the message says where it should go and how
    to download it."""

    def __init__(self, node: str, input_name: str | None, folder: str, filename: str, model_id: str | None = None):
        fix = f"put '{filename}' into ComfyUI's models/{folder}/"
        if model_id:
            fix += f" or run: python -m ip_to_portrait models download {model_id}"
        super().__init__(node, input_name, f"model file '{filename}' was not found in models/{folder}.", fix + ".")
        self.folder = folder
        self.filename = filename
