"""Errors a user can act on.

ComfyUI shows an exception's message in the editor. A message from deep inside onnxruntime or torch
tells a user nothing, so stage code raises :class:`I2PError` naming the node, the input and the fix.
The model-file errors, which need ComfyUI's folders to name a file, are in :mod:`.model_errors`.
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
