"""Face geometry benchmark: the pack's own per-face work around the models (landmark fit, aligned crop,
colour transfer, mask, paste-back; pre-paste; identity crops; the safety classifier's resize), with
pass-through stand-ins for the networks, so it needs no weights, no lock and little time.

The model steps themselves are timed by post_stage.py, face_stage.py and identity_patch.py; this one
isolates what core/faces/align.py and core/faces/colour.py cost. Photo 1024x1024, a 300 px face (as
post_stage.py), a 500 px source face pre-pasted onto a 180 px one. Figures are the median process CPU
seconds of ``--repeats`` runs after a warm-up (CPU time is what a loaded shared machine distorts least).

usage: .venv/bin/python bench/face_geometry.py [--repeats 25]
writes bench/results/face_geometry.md
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
RESULTS = HERE / "results" / "face_geometry.md"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=25)
    args = ap.parse_args()
    import numpy as np

    from packload import pack_module

    al = pack_module("core.faces.align")
    ft = pack_module("core.faces.types")
    fs = pack_module("core.post.swap")
    gs = pack_module("core.post.ghost")
    fr = pack_module("core.post.restore")
    pp = pack_module("core.inpaint.prepaste")
    enc = pack_module("core.identity.encoding")
    gate = pack_module("core.post.nsfw_gate")

    from post_stage import frontal_face, scene_photo  # the same photo and face as post_stage.py

    photo = scene_photo(np.random.default_rng(0))
    target, source, small = (frontal_face(ft, *spec) for spec in ((512, 480, 300), (512, 500, 500), (300, 300, 180)))

    class InswapperGeometry:  # inswapper's alignment, the network replaced by a mirror
        crop_size = 128

        def crop_affine(self, kps):
            return al.arcface_affine(kps, 128), al.arcface_template(128)

        def swap(self, crop, identity):
            return np.ascontiguousarray(crop[:, ::-1])

    class GhostGeometry(InswapperGeometry):  # Ghost's five-template alignment at 224 -> 256
        crop_size = 256

        def crop_affine(self, kps):
            return gs.GhostSwapper.crop_affine(kps)

    class RestoreGeometry:  # GFPGAN's 512 FFHQ frame, the network replaced by a mirror
        size = 512

        def restore_crop(self, crop):
            return np.ascontiguousarray(crop[:, ::-1])

    class ClipStandIn(enc.ClipEncoder):
        def encode(self, images):
            flat = images.reshape(images.shape[0], -1)[:, :8]
            return flat[:, None], flat

        def encode_uncond(self):
            import torch

            return torch.zeros(1, 1, 8), torch.zeros(1, 8)

    ys, xs = np.mgrid[0:1024, 0:1024]
    paste_mask = (((xs - 300) ** 2 + (ys - 300) ** 2) < 80 ** 2).astype(np.float32)
    opts, boost = fs.SwapOptions(), fs.SwapOptions(boost=RestoreGeometry())
    steps = {
        "swap, inswapper geometry (fit, crop 128, colour, mask, paste)":
            lambda: fs.swap_one(photo, target, None, InswapperGeometry(), opts),
        "swap, Ghost geometry (five-template fit, crop 256, colour, mask, paste)":
            lambda: fs.swap_one(photo, target, None, GhostGeometry(), opts),
        "Ghost source crop 224 (five-template fit)":
            lambda: al.warp(photo, gs.GhostSwapper.align_224(source.kps)[0], 224, border="zero"),
        "swap + boost geometry (128 -> 512 FFHQ frame, paste 512)":
            lambda: fs.swap_one(photo, target, None, InswapperGeometry(), boost),
        "restore geometry (FFHQ fit, crop 512, mask, paste)":
            lambda: fr.restore_faces(photo, [target], RestoreGeometry(), 1.0),
        "pre-paste (500 px source face onto a 180 px face: fit, antialiased warp, colour, blend)":
            lambda: pp.prepaste_face(photo, small.kps, paste_mask, photo, source.kps, 1.0, 8),
        "identity crops, mode face (aligned 224)":
            lambda: enc.encode_identity([photo], [target], ClipStandIn(), False, "face"),
        "identity crops, mode hair (antialiased loose 224)":
            lambda: enc.encode_identity([photo], [target], ClipStandIn(), False, "hair"),
        "identity crops, mode blend (both crops, feature mix)":
            lambda: enc.encode_identity([photo], [target], ClipStandIn(), False, "blend", 0.5),
        "safety classifier resize 1024 -> 224 (antialiased)": lambda: gate._resize(photo, 224),
    }
    rows = []
    for name, fn in steps.items():
        fn()
        runs = []
        for _ in range(args.repeats):
            t = time.process_time()
            fn()
            runs.append(time.process_time() - t)
        rows.append((name, statistics.median(runs), min(runs), max(runs)))
    import cv2

    lines = [
        "# Face geometry benchmark (bench/face_geometry.py)",
        "",
        f"Command: `.venv/bin/python bench/face_geometry.py --repeats {args.repeats}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), numpy "
        f"{np.__version__}, Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}.",
        "Networks replaced by pass-through stand-ins: what is timed is the pack's own geometry and colour work.",
        "",
        "| step | median CPU ms | min-max CPU ms |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {m * 1e3:.2f} | {lo * 1e3:.2f}-{hi * 1e3:.2f} |" for n, m, lo, hi in rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = RESULTS.read_text() if RESULTS.exists() else ""
    keep = old[old.index("\n## "):] if "\n## " in old else ""  # hand-written comparison sections stay
    RESULTS.write_text("\n".join(lines) + "\n" + keep)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
