"""What a full-size text encoder costs on this machine: load it the way ComfyUI's CLIPLoader does
(``comfy.sd.load_clip``), encode one prompt, and report the times, the model's dtypes and this
process's peak RSS.

The file is the comfyui tier's random-weight test model (tests/model_factory; built into the shared
``full`` cache first if missing): real size and key layout, so load time and memory are the real
ones for that file's dtype, although the encoding means nothing. The model build runs in a child
process, so the peak RSS reported is the load and encode alone (plus ComfyUI's imports).

usage (holds several GB: run under the machine's heavy-work lock):
    COMFYUI_PATH=/path/to/ComfyUI <ComfyUI's python> bench/text_encoder.py \\
        [--model-id qwen3-4b-text-encoder] [--type flux2] [--prompt "..."] [--device cpu]
writes bench/results/text_encoder-<model-id>-<device>.md
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from comfyui_fixtures import build_models_in_subprocess, full_models_cache  # noqa: E402

PROMPT = ("Put the face of the person in image 1 onto the person in image 2. Keep image 2's pose, expression, "
          "lighting, skin tone and hair; change nothing else.")  # edit_model_portrait's instruction


def measure(path: Path, clip_type: str, prompt: str) -> dict:
    """Load ``path`` as ComfyUI's CLIPLoader would (on the CPU) and encode ``prompt`` once."""
    from model_factory.text_encoders import comfy_importable_on_cpu

    comfy_importable_on_cpu()
    import torch
    import comfy.sd

    t0 = time.monotonic()
    clip = comfy.sd.load_clip(ckpt_paths=[str(path)], clip_type=getattr(comfy.sd.CLIPType, clip_type.upper()))
    t1 = time.monotonic()
    tokens = clip.tokenize(prompt)
    cond = clip.encode_from_tokens_scheduled(tokens)
    t2 = time.monotonic()
    c = cond[0][0]
    params = list(clip.cond_stage_model.parameters())
    return {"load_s": t1 - t0, "encode_s": t2 - t1, "cond_shape": list(c.shape),
            "finite": bool(torch.isfinite(c).all()), "params_g": sum(p.numel() for p in params) / 1e9,
            "dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in params}),
            "tokens": sum(len(v[0]) if v and isinstance(v[0], list) else len(v) for v in tokens.values()),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-id", default="qwen3-4b-text-encoder", help="manifest id of the text encoder")
    ap.add_argument("--type", default="flux2", help="CLIPLoader type (a comfy.sd.CLIPType name)")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--device", default="cpu", help="label of the results file")
    args = ap.parse_args(argv)
    if not os.environ.get("COMFYUI_PATH"):
        ap.error("set COMFYUI_PATH to a ComfyUI checkout")
    cache = full_models_cache()
    t0 = time.monotonic()
    built, skipped = build_models_in_subprocess(cache, [args.model_id])
    if args.model_id not in built:
        ap.error(f"{args.model_id} could not be built: {skipped.get(args.model_id)}")
    build_s = time.monotonic() - t0
    path = built[args.model_id]
    r = measure(path, args.type, args.prompt)
    lines = [f"# Text encoder `{args.model_id}` through comfy.sd.load_clip ({args.device})", "",
             f"Command: `COMFYUI_PATH=/path/to/ComfyUI python bench/text_encoder.py --model-id {args.model_id} "
             f"--type {args.type} --device {args.device}`.", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
             f"load average at start {os.getloadavg()[0]:.1f}. File: `{path.name}`, "
             f"{path.stat().st_size / 1e9:.2f} GB, random weights (tests/model_factory), "
             f"{'already in the cache' if build_s < 30 else f'built in {build_s:.0f} s'}.", "",
             "| what | measured |", "|---|---|",
             f"| parameters, dtypes held | {r['params_g']:.2f} G, {', '.join(r['dtypes'])} |",
             f"| load (CLIPLoader's comfy.sd.load_clip) | {r['load_s']:.1f} s |",
             f"| encode one prompt ({r['tokens']} tokens after the tokenizer's padding) | {r['encode_s']:.1f} s |",
             f"| conditioning | {r['cond_shape']}, finite: {r['finite']} |",
             f"| peak RSS of this process (imports, load, encode) | {r['peak_rss_gib']:.2f} GiB |", ""]
    target = HERE / "results" / f"text_encoder-{args.model_id}-{args.device}.md"
    target.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
