"""Random-weight text encoders at their REAL size, written from ComfyUI's own classes, streaming.

ComfyUI builds its LLM text encoders (Qwen3-4B for FLUX.2 [klein], Qwen2.5-VL-7B for Qwen-Image, ...)
from fixed configs (comfy/text_encoders/llama.py): a reduced-depth or narrower file would load with
layers left uninitialised, so the test file must have every key at the real shape. At 4-8 G
parameters the weights cannot sit in RAM twice, so :func:`write_random_text_encoder`:

1. instantiates ComfyUI's class on the ``meta`` device (no storage) only to read its state-dict
   keys and shapes, the layout ComfyUI's own ``load_state_dict`` expects;
2. writes the safetensors header, then each tensor, generated in row chunks from one seeded
   generator and cast to the file dtype, straight to disk: peak memory is one chunk, not the model.

Weights: seeded normal * ``std`` (small, so activations stay finite through every layer); 1-D
``*norm*`` weights 1.0 (ComfyUI's Qwen RMSNorms multiply by the weight); biases 0. Storing the norms
in the file dtype too matters for fp8: ComfyUI takes the model dtype from a norm weight
(``llama_detect``), so an all-fp8 file is held as fp8 and cast per layer on use (``manual_cast``),
half the RAM of bf16. Same seed, same class, same dtype -> same bytes.

Importing this module needs only torch; ComfyUI must be importable when a ComfyUI class is passed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .sdxl_checkpoint import write_safetensors

#: safetensors' dtype names
_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"}
_CHUNK_ELEMENTS = 1 << 24  # 16 M values generated at a time (64 MB of fp32)


def comfy_importable_on_cpu() -> None:
    """Make ``import comfy...`` work in a plain process (the tier's model build): ComfyUI's checkout
    from ``$COMFYUI_PATH`` on sys.path, and its device set to the CPU before ``model_management``
    is first imported (otherwise it asks CUDA for a device at import time and fails without one)."""
    import os
    import sys

    path = os.environ.get("COMFYUI_PATH")
    if path and path not in sys.path:
        sys.path.append(path)
    if "comfy.model_management" not in sys.modules:
        from comfy.cli_args import args

        args.cpu = True


def meta_state_dict_shapes(model_class: Callable[..., torch.nn.Module], config_dict: dict | None = None,
                           dtype: torch.dtype = torch.bfloat16, operations: Any = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``model_class(config_dict, dtype, "meta", operations)``'s state dict (ComfyUI's
    text-encoder constructor signature; ``operations`` defaults to ``comfy.ops.manual_cast``, what
    ComfyUI builds an unquantised text encoder with), built without allocating any weight."""
    if operations is None:
        comfy_importable_on_cpu()
        import comfy.ops

        operations = comfy.ops.manual_cast
    with torch.device("meta"):
        model = model_class(dict(config_dict or {}), dtype, torch.device("meta"), operations)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _fill(key: str, shape: tuple[int, ...]) -> str:
    if key.endswith("bias"):
        return "zeros"
    if len(shape) == 1 and "norm" in key:
        return "ones"
    return "normal"


def _chunks(key: str, shape: tuple[int, ...], gen: torch.Generator, std: float):
    """The tensor's values, in fp32 row-chunks of at most ~_CHUNK_ELEMENTS values."""
    kind = _fill(key, shape)
    rows = shape[0] if shape else 1
    per_row = max(1, int(torch.Size(shape[1:]).numel())) if shape else 1
    step = max(1, _CHUNK_ELEMENTS // per_row)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        chunk_shape = (n, *shape[1:]) if shape else ()
        if kind == "zeros":
            yield torch.zeros(chunk_shape)
        elif kind == "ones":
            yield torch.ones(chunk_shape)
        else:
            yield torch.randn(chunk_shape, generator=gen) * std


def write_random_state_dict(shapes: dict[str, tuple[int, ...]], dest: Path, dtype: torch.dtype = torch.float8_e4m3fn,
                            seed: int = 0, std: float = 0.02, metadata: dict[str, str] | None = None) -> Path:
    """Stream a safetensors file of seeded random tensors with these keys and shapes to ``dest``
    (written to ``dest.part`` first, renamed when complete: never a half-written file)."""
    if dtype not in _ST_DTYPES:
        raise ValueError(f"unsupported dtype {dtype}; one of {sorted(map(str, _ST_DTYPES))}")
    gen = torch.Generator().manual_seed(seed)  # one generator, consumed in key order as the writer goes

    def data(key: str):
        return lambda: (chunk.to(dtype).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                        for chunk in _chunks(key, shapes[key], gen, std))

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        write_safetensors(part, [(key, _ST_DTYPES[dtype], shapes[key], data(key)) for key in shapes], metadata)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


def write_random_text_encoder(model_class: Callable[..., torch.nn.Module], dest: Path,
                             dtype: torch.dtype = torch.float8_e4m3fn, seed: int = 0,
                             config_dict: dict | None = None, std: float = 0.02, operations: Any = None) -> Path:
    """Write a random-weight text encoder with every key and shape of ComfyUI's ``model_class``
    (e.g. ``comfy.text_encoders.llama.Qwen3_4B``, built with ``config_dict`` overrides, usually none)
    to ``dest`` as safetensors in ``dtype``, streaming (see the module docstring)."""
    shapes = meta_state_dict_shapes(model_class, config_dict, operations=operations)
    return write_random_state_dict(shapes, dest, dtype=dtype, seed=seed, std=std,
                                   metadata={"i2p_test_model": f"random {model_class.__name__}, seed {seed}"})
