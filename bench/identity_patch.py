"""Identity patch benchmark: per-step overhead of the 70-layer attention patch against the unpatched
model, on ComfyUI's own full-size SDXL UNet (2.57 B params, random weights), plus the one-off cost of
turning an identity into tokens.

The UNet is ComfyUI's ``openaimodel.UNetModel`` with SDXL's configuration, so the patch runs through
ComfyUI's real attn2-replace dispatch, with ComfyUI's ``optimized_attention`` for the text attention as
the node uses it. One "step" is one UNet evaluation of a CFG batch (2 latents: cond + uncond), as
KSampler does per step. Three variants are timed interleaved (plain, patched in an active step,
patched after stop_at) so that load from other processes hits them alike; medians are reported.

usage (needs a ComfyUI checkout and a Python that imports it; ~6 GB in bf16, so hold the heavy lock):
    COMFYUI_PATH=/path/to/ComfyUI flock /tmp/i2p-heavy.lock /path/to/comfy-venv/bin/python bench/identity_patch.py \
        --sizes 32 --repeats 5 [--dtype bf16|fp32] [--device cpu|cuda]
writes bench/results/identity_patch.md
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
RESULTS = HERE / "results" / "identity_patch.md"

SDXL = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
        "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
        "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
        "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
        "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
        "use_temporal_attention": False, "use_temporal_resblock": False}


class _Patcher:
    """Just enough of a ModelPatcher for core.identity.attention.patch_model."""

    def __init__(self):
        self.model_options = {"transformer_options": {}}

    def clone(self):
        n = _Patcher()
        n.model_options = {"transformer_options": dict(self.model_options["transformer_options"])}
        return n

    def set_model_attn2_replace(self, patch, block_name, number, transformer_index=None):
        to = self.model_options["transformer_options"]
        to.setdefault("patches_replace", {}).setdefault("attn2", {})[(block_name, number, transformer_index)] = patch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32], help="latent sizes (32 = 256 px)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = args.device == "cpu"
    import torch

    import comfy.ldm.modules.attention as comfy_attention
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from packload import pack_module

    attn = pack_module("core.identity.attention")
    proj_mod = pack_module("models.ipadapter")
    enc = pack_module("core.identity.encoding")
    ipa = pack_module("models.ipadapter")
    from model_factory.ipadapter_models import SDXL_WIDTHS, faceid_plus_image_proj

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    dev = torch.device(args.device)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    unet = UNetModel(**SDXL, dtype=dtype, device=dev, operations=comfy.ops.disable_weight_init).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.normal_(0, 0.02)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in unet.parameters())

    # the one-off part: full-size FaceID Plus v2 projection (tokens computed once per identity)
    gen = torch.Generator().manual_seed(1)
    image_proj = faceid_plus_image_proj(gen, 2048, 1280)
    adapter = ipa.IPAdapter("bench", ipa.FACEID_PLUS, True, "SDXL", image_proj, [], [], 2048, 1280)
    ident = enc.Identity(embedding=torch.nn.functional.normalize(torch.randn(1, 512), dim=-1),
                         clip_hidden=torch.randn(1, 257, 1280), clip_uncond_hidden=torch.randn(1, 257, 1280))
    t0 = time.perf_counter()
    adapter.projection()
    proj_build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cond, uncond = proj_mod.project(adapter, ident, 1.0)
    project_s = time.perf_counter() - t0

    wk = [torch.randn(c, 2048, generator=gen) * 0.02 for c in SDXL_WIDTHS]
    wv = [torch.randn(c, 2048, generator=gen) * 0.02 for c in SDXL_WIDTHS]

    def comfy_attn(q, k, v, heads, **options):
        return comfy_attention.optimized_attention(q, k, v, heads, **options)

    patch = attn.IdentityPatch(cond, uncond, wk, wv, 1.0, 0.0, 0.5, attention=comfy_attn)
    patched, _ = attn.patch_model(_Patcher(), patch)
    replace = patched.model_options["transformer_options"]["patches_replace"]
    sched = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])

    rows = []
    for size in args.sizes:
        x = torch.randn(2, 4, size, size, device=dev, dtype=dtype)
        ts = torch.tensor([500.0, 500.0], device=dev)
        ctx = torch.randn(2, 77, 2048, device=dev, dtype=dtype)
        y = torch.randn(2, 2816, device=dev, dtype=dtype)

        def run(variant):
            to = {"cond_or_uncond": [1, 0], "sample_sigmas": sched}
            if variant == "plain":
                to["sigmas"] = torch.tensor([14.6, 14.6])
            else:
                to["patches_replace"] = replace
                to["sigmas"] = torch.tensor([14.6, 14.6] if variant == "active" else [1.0, 1.0])
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.no_grad():
                unet(x, ts, context=ctx, y=y, transformer_options=to)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t

        # the added work alone, layer by layer: the identity term on each layer's real q shape
        # (SDXL: 640 wide at 1/2 latent size in input 4-5 / output 3-5, 1280 wide at 1/4 elsewhere)
        def term_time():
            total = 0.0
            for i, (block, number, _t) in enumerate(attn.SDXL_ATTN2_LAYERS):
                c = SDXL_WIDTHS[i]
                side = size // 2 if c == 640 else size // 4
                q = torch.randn(2, side * side, c, device=dev, dtype=dtype)
                opts = {"n_heads": c // 64, "cond_or_uncond": [1, 0]}
                t = time.perf_counter()
                with torch.no_grad():
                    patch.term(i, q, opts)
                total += time.perf_counter() - t
            return total

        term_time()
        terms = sorted(term_time() for _ in range(max(args.repeats, 5)))
        for v in ("plain", "active", "inactive"):  # warm-up (and the patch's per-layer k/v cache)
            run(v)
        times = {"plain": [], "active": [], "inactive": []}
        for _ in range(args.repeats):
            for v in times:
                times[v].append(run(v))
        med = {v: statistics.median(t) for v, t in times.items()}
        med["term"] = statistics.median(terms)
        rows.append((size, med, {v: (min(t), max(t)) for v, t in times.items()}))
        print(size, {k: round(v, 3) for k, v in med.items()}, flush=True)

    lines = [
        "# Identity patch benchmark", "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"device {args.device}, {args.dtype}; `bench/identity_patch.py --sizes {' '.join(map(str, args.sizes))} "
        f"--repeats {args.repeats} --dtype {args.dtype}`.",
        f"ComfyUI's SDXL UNetModel, {n_params / 1e9:.3f} B params, random weights (built in {build_s:.0f} s); "
        "one step = one UNet evaluation of a CFG batch of 2; 70 attn2 layers patched; 4 identity tokens; "
        "text attention through ComfyUI's optimized_attention. Medians of the repeats, the three variants "
        "interleaved. The machine is shared with other jobs, so min/max are shown too.", "",
        "| latent | px | plain s/step | patched, active s/step | overhead | patched, after stop_at s/step | overhead | min-max plain | min-max active | identity term alone, 70 layers s/step | term / plain step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, med, rng in rows:
        oa = (med["active"] / med["plain"] - 1) * 100
        oi = (med["inactive"] / med["plain"] - 1) * 100
        ot = med["term"] / med["plain"] * 100
        lines.append(f"| {size}x{size} | {size * 8} | {med['plain']:.3f} | {med['active']:.3f} | {oa:+.2f} % | "
                     f"{med['inactive']:.3f} | {oi:+.2f} % | {rng['plain'][0]:.3f}-{rng['plain'][1]:.3f} | "
                     f"{rng['active'][0]:.3f}-{rng['active'][1]:.3f} | {med['term']:.4f} | {ot:.2f} % |")
    lines += [
        "",
        "The end-to-end difference is below what this shared 2-core machine can resolve (other jobs "
        "run beside it: see min/max); the last two columns time the added work directly - the identity "
        "term of all 70 layers on the layers' real query shapes - which is an upper bound of the patch's "
        "per-step cost that does not drown in that noise.",
        "",
        "Target: overhead <= 3 % per step. Analytic extra work: 4 extra key/value tokens per attn2 layer "
        "(~0.065 % of the UNet's FLOPs); to_k_ip/to_v_ip of the fixed tokens are computed once per layer "
        "and cached, not per step.",
        "",
        "## Once per identity (not per step)",
        "",
        f"- building the full-size FaceID Plus v2 projection (diffusers `IPAdapterFaceIDPlusImageProjection`, "
        f"fp32): {proj_build_s:.2f} s, once per loaded adapter",
        f"- projecting one identity to cond + uncond tokens: {project_s:.3f} s, once per Apply Identity run "
        "(the ArcFace embedding and the CLIP features are computed once per source image and can be saved "
        "with I2P Save Face Identity)",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
