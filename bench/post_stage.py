"""Post-processing benchmark: seconds per face for inswapper_128, Ghost, GFPGAN v1.4 and the identity
score, with real-size architectures and random weights (same compute as the published files).

Models (built into a temporary ComfyUI-style models/ tree by tests/model_factory, profile ``full``):
- inswapper_128: an ONNX graph of inswapper's shape and size (encoder to 1024x32x32, six AdaIN style
  blocks, decoder; ~134 M parameters, fp32), through the pack's InSwapper (onnxruntime, CPU);
- Ghost: AEI-Net U-Net 2 blocks at 256 px (the published G_unet_2blocks layout) + iresnet100 ArcFace;
- GFPGAN v1.4: spandrel's GFPGANv1Clean, full size (86.4 M parameters);
- identity score: buffalo_l's recognition graph at real size (IResNet-50) via the pack's analyzer.

Each number is the whole per-face step of the pack (align, model, colour match, paste-back into a
1024x1024 photo), median of ``--repeats`` runs after one warm-up. Targets: inswapper <= 2 s,
Ghost <= 3 s, GFPGAN <= 4 s per face.

usage:  flock /tmp/i2p-heavy.lock .venv/bin/python bench/post_stage.py [--repeats 3]
writes bench/results/post_stage.md
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
RESULTS = HERE / "results" / "post_stage.md"
TARGETS = {"inswapper_128 swap": 2.0, "inswapper_128 fp16 swap": 2.0, "Ghost swap": 3.0, "GFPGAN v1.4 restore": 4.0}


def scene_photo(rng, size: int = 1024):
    """The benchmarks' photo: smooth colour gradients plus mild noise (uint8 RGB)."""
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.clip(np.stack([60 + 120 * xx / size, 80 + 100 * yy / size, 140 + 0 * xx], -1)
                   + rng.normal(0, 5, (size, size, 3)), 0, 255).astype(np.uint8)


def frontal_face(ft, cx: float, cy: float, s: float, embedding=None):
    """A Face whose 5 landmarks sit where a frontal face of ``s`` px centred at (cx, cy) has them."""
    import numpy as np

    kps = np.array([[cx - 0.18 * s, cy - 0.1 * s], [cx + 0.18 * s, cy - 0.1 * s], [cx, cy + 0.05 * s],
                    [cx - 0.15 * s, cy + 0.25 * s], [cx + 0.15 * s, cy + 0.25 * s]], np.float32)
    return ft.Face(bbox=np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], np.float32), kps=kps,
                   det_score=0.9, embedding=embedding)


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up (session / weights / allocator)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("I2P_QUIET", "1")
    import numpy as np
    import torch

    import model_factory
    from packload import pack_module

    root = Path(tempfile.mkdtemp(prefix="i2p-bench-post-"))
    os.environ["I2P_MODELS_DIR"] = str(root)
    t = time.perf_counter()
    ids = ["inswapper_128", "inswapper_128-fp16", "ghost-unet-2blocks", "ghost-arcface", "gfpgan-v1.4",
           "buffalo_l-det_10g", "buffalo_l-w600k_r50", "buffalo_l-genderage", "buffalo_l-2d106det", "buffalo_l-1k3d68"]
    paths = model_factory.build_all(root, "full", ids)
    build_s = time.perf_counter() - t

    fs = pack_module("core.post.swap")
    gs = pack_module("core.post.ghost")
    fr = pack_module("core.post.restore")
    fa = pack_module("core.faces.analysis")
    ft = pack_module("core.faces.types")
    score = pack_module("core.post.identity_score")

    rng = np.random.default_rng(0)
    photo = scene_photo(rng)
    emb = rng.standard_normal(512).astype(np.float32)
    face = frontal_face(ft, 512.0, 480.0, 300.0, embedding=emb / np.linalg.norm(emb))
    opts = fs.SwapOptions()
    rows = []

    def swap_row(name, model, source_image=None):
        ident = model.source_identity(source_image, face)
        med, times = timed(lambda: fs.swap_one(photo, face, ident, model, opts), args.repeats)
        rows.append((name, med, times, model.describe()))

    swap_row("inswapper_128 swap", fs.InSwapper(str(paths["inswapper_128"]), "CPU"))
    swap_row("inswapper_128 fp16 swap", fs.InSwapper(str(paths["inswapper_128-fp16"]), "CPU"))
    ghost = gs.load_ghost(paths["ghost-unet-2blocks"], paths["ghost-arcface"])
    med, times = timed(lambda: ghost.source_identity(photo, face), args.repeats)
    rows.append(("Ghost source ArcFace (once per source)", med, times, "iresnet100"))
    swap_row("Ghost swap", ghost, photo)
    restorer32 = fr.load_restorer(paths["gfpgan-v1.4"], precision="fp32")
    med, times = timed(lambda: fr.restore_faces(photo, [face], restorer32, 1.0), args.repeats)
    rows.append(("GFPGAN v1.4 restore, fp32", med, times, restorer32.describe()))
    restorer = fr.load_restorer(paths["gfpgan-v1.4"], precision="auto")
    med, times = timed(lambda: fr.restore_faces(photo, [face], restorer, 1.0), args.repeats)
    rows.append(("GFPGAN v1.4 restore", med, times, restorer.describe() + " (precision auto, the node's setting)"))
    boost = fs.SwapOptions(boost=restorer)
    model = fs.InSwapper(str(paths["inswapper_128"]), "CPU")
    ident = model.source_identity(None, face)
    med, times = timed(lambda: fs.swap_one(photo, face, ident, model, boost), args.repeats)
    rows.append(("inswapper_128 swap + GFPGAN boost", med, times, "inswapper + GFPGAN at 512 (auto precision)"))
    analyzer = fa.load_analyzer("buffalo_l", "CPU")
    med, times = timed(lambda: score.score_pairs(photo, [face], [face], [(0, 0)], analyzer.embed), args.repeats)
    rows.append(("identity score", med, times, analyzer.describe().splitlines()[0].replace(str(root), "<models>")))

    n_params = {
        "Ghost AEI-Net": sum(p.numel() for p in ghost.generator.module.parameters()),
        "Ghost iresnet100": sum(p.numel() for p in ghost.arcface.module.parameters()),
        "GFPGAN": sum(p.numel() for p in restorer.managed.module.parameters()),
    }
    lines = [
        "# Post-processing benchmark (per face)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}; load average at the end "
        f"{os.getloadavg()[0]:.1f} (the machine is shared: other jobs ran at the same time).",
        f"Run: `flock /tmp/i2p-heavy.lock .venv/bin/python bench/post_stage.py --repeats {args.repeats}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Random weights at the real architecture "
        f"sizes (built in {build_s:.0f} s): inswapper graph {paths['inswapper_128'].stat().st_size / 1e6:.0f} MB, "
        + ", ".join(f"{k} {v / 1e6:.1f} M params" for k, v in n_params.items()) + ".",
        "Each step is the pack's whole per-face work on a 1024x1024 photo with a 300 px face (align, model, "
        "colour match, feathered paste-back); median of the runs after one warm-up.",
        "",
        "| step | median s | runs (s) | target | model |",
        "|---|---|---|---|---|",
    ]
    for name, med, times, desc in rows:
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"<= {target:.0f} s " + ("met" if med <= target else "MISSED"))
        lines.append(f"| {name} | {med:.2f} | {', '.join(f'{x:.2f}' for x in times)} | {verdict} | {desc} |")
    lines += ["", f"Peak RSS of the benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
