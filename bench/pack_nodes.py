"""The pack's own nodes of a bundled workflow, timed per node in-process: this checkout against an
older one, interleaved on the same machine, so a change comes with its before/after ratio.

Each workflow's shipped API file is executed node by node with the node classes called directly (no
ComfyUI server, no ComfyUI model management). The pack's nodes run for real on the full-size
random-weight test models (``tests/model_factory``, profile ``full``, built by bench/workflows.py or
the ``comfyui`` tier). What needs SDXL is stood in for and not timed: LoadImage gives a new seeded
astronaut per run (as bench/workflows.py does), the checkpoint, CLIP and identity-patch nodes pass
nothing, and I2P Face Inpaint is replaced by a fixed pixel change inside its mask (the masked region
shifted by 2 px and darkened 3 %), so the nodes after it see an image that changed after detection,
as they do after a real inpaint.

``--compare OLD`` runs the workers alternately (old, new, new, old, ...), each a fresh process that
loads its pack once, does one cold run and ``--runs`` warm runs on new pixels; per node it reports the
median wall and CPU seconds (process CPU time, all threads) of the warm runs and the ratio new / old,
checks that both checkouts produce the same final image for the same run, and counts the face
detector's runs per graph.

usage: .venv/bin/python bench/pack_nodes.py --compare /path/to/old/checkout [--rounds 2] [--runs 2]
       [--workflows fast_swap,recommended_portrait]
writes bench/results/pack_nodes.md;  ``--gfpgan-batch`` writes bench/results/gfpgan_batch.md
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
RESULTS = HERE / "results" / "pack_nodes.md"
#: classes stood in for (they need SDXL): their time is not the pack's own and is not measured here
SDXL_NODES = {"CheckpointLoaderSimple", "CLIPVisionLoader", "CLIPTextEncode", "I2PIdentityAdapterLoader",
              "I2PApplyIdentity"}
NO_OUTPUT = {"PreviewImage", "SaveImage", "Note"}


# ------------------------------------------------------------------------------------------- worker
def load_pack_at(root: Path):
    """The pack at ``root``, imported by file path under its own module name (as ComfyUI does), so two
    checkouts never share a module."""
    name = str(root / "custom_nodes_under_bench").replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, name


def photo(run: int, flip: bool):
    """A new seeded astronaut per run (the face photo is the flipped one), as an IMAGE tensor."""
    import numpy as np
    import torch
    from skimage import data as skdata

    base = skdata.astronaut()[::-1] if flip else skdata.astronaut()
    rng = np.random.default_rng(run)
    arr = np.clip(base.astype(np.int16) + rng.integers(-6, 7, size=base.shape), 0, 255).astype(np.float32) / 255
    return torch.from_numpy(arr)[None]


def inpaint_standin(image, mask):
    """A fixed change inside ``mask``, standing in for the SDXL inpaint: the region shifted by 2 px."""
    import torch

    m = mask[..., None] if mask.ndim == 3 else mask[None, ..., None]
    moved = torch.roll(image, shifts=(2, 1), dims=(1, 2)) * 0.97
    return (image * (1 - m) + moved * m,)


def topological(prompt: dict) -> list[str]:
    done: dict[str, None] = {}

    def visit(nid: str) -> None:
        if nid in done:
            return
        for value in prompt[nid]["inputs"].values():
            if isinstance(value, list) and len(value) == 2:
                visit(str(value[0]))
        done[nid] = None

    for nid in prompt:
        visit(nid)
    return list(done)


def run_graph(mappings: dict, prompt: dict, run: int) -> tuple[dict[str, tuple[float, float]], object]:
    """Execute once; per pack node (wall s, CPU s), and the image that goes into SaveImage."""
    values: dict[str, tuple] = {}
    times: dict[str, tuple[float, float]] = {}
    final = None
    for nid in topological(prompt):
        node = prompt[nid]
        ct = node["class_type"]
        args = {k: (values[str(v[0])][v[1]] if isinstance(v, list) and len(v) == 2 else v)
                for k, v in node["inputs"].items()}
        if ct == "LoadImage":
            values[nid] = (photo(run, flip=node["inputs"]["image"] != "reference.png"), None)
        elif ct in NO_OUTPUT:
            values[nid] = ()
            if ct == "SaveImage":
                final = args["images"]
        elif ct in SDXL_NODES:
            values[nid] = (None, None, None)
        elif ct == "I2PFaceInpaint":
            values[nid] = inpaint_standin(args["image"], args["mask"])
        else:
            cls = mappings[ct]
            w0, c0 = time.perf_counter(), time.process_time()
            out = getattr(cls(), cls.FUNCTION)(**args)
            times[nid] = (time.perf_counter() - w0, time.process_time() - c0)
            values[nid] = out["result"] if isinstance(out, dict) else out
    return times, final


def worker(args) -> None:
    import numpy as np
    import shipped_workflows as sw

    os.environ["I2P_MODELS_DIR"] = str(args.models)
    os.environ.setdefault("I2P_QUIET", "1")
    pack, name = load_pack_at(Path(args.pack).resolve())
    analysis = importlib.import_module(f"{name}.core.faces.analysis")
    detections = [0, 0.0]  # detector runs, their CPU seconds
    original = analysis.FaceAnalyzer.detect

    def counted(self, *a, **kw):
        c0 = time.process_time()
        try:
            return original(self, *a, **kw)
        finally:
            detections[0] += 1
            detections[1] += time.process_time() - c0

    analysis.FaceAnalyzer.detect = counted
    report = {}
    for w, wf in enumerate(args.workflows.split(",")):
        prompt = sw.for_cpu(sw.shipped(wf), {"steps": 2, "target_size": 256})
        titles = {nid: f"{nid} {(n.get('_meta') or {}).get('title', n['class_type'])}" for nid, n in prompt.items()}
        runs = []
        for run in range(args.runs + 1):  # run 0 is the cold one (models load), not reported
            detections[:] = [0, 0.0]
            times, final = run_graph(pack.NODE_CLASS_MAPPINGS, prompt, 100 * w + run)  # new pixels every time
            if run:
                runs.append({"times": times, "detections": detections[0], "detect_cpu": detections[1]})
                image = (final[0].numpy() * 255).round().astype(np.uint8)
                np.save(Path(args.out_dir) / f"{wf}-{run}.npy", image)
        report[wf] = {"titles": titles, "classes": {k: v["class_type"] for k, v in prompt.items()}, "runs": runs}
    print("JSON" + json.dumps(report))


def gfpgan_batch(args) -> None:
    """GFPGAN on two aligned faces: one forward of a batch of two against two forwards of one, per
    precision and thread count: does batching the faces pay on this machine? Writes
    bench/results/gfpgan_batch.md (process CPU seconds and wall seconds, min and median of 3)."""
    import numpy as np
    import torch

    os.environ["I2P_MODELS_DIR"] = str(args.models)
    _, name = load_pack_at(Path(args.pack).resolve())
    restore = importlib.import_module(f"{name}.core.post.restore")
    path = Path(args.models) / "facerestore_models" / "GFPGANv1.4.pth"
    crops = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, 512, 512)).astype(np.float32))
    lines = ["# GFPGAN v1.4: two faces as one batch or one by one", "",
             f"Command: `.venv/bin/python bench/pack_nodes.py --gfpgan-batch` "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). Machine: {platform.machine()}, "
             f"{os.cpu_count()} CPU cores, shared (load average {os.getloadavg()[0]:.1f} at start), torch "
             f"{torch.__version__}. Full-size random weights, two 512 px crops; 3 interleaved repeats after a "
             "warm-up. On a shared machine the minimum is the figure to read.", "",
             "| precision | threads | one by one: CPU s min / median | one batch: CPU s min / median | "
             "one by one: wall s min | one batch: wall s min | batch / one by one (wall min) | largest output "
             "difference |", "|---|---|---|---|---|---|---|---|"]
    for precision in ("fp32", "bf16"):
        net = restore.load_restorer(path, precision=precision).managed.load()
        x = crops.to(next(net.parameters()).dtype)
        ways = {"single": lambda: [net(x[i:i + 1], return_rgb=False, randomize_noise=False)[0] for i in range(2)],
                "batch": lambda: net(x, return_rgb=False, randomize_noise=False)[0]}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            cpu: dict[str, list[float]] = {k: [] for k in ways}
            wall: dict[str, list[float]] = {k: [] for k in ways}
            with torch.inference_mode():
                single, batch = ways["single"](), ways["batch"]()  # warm-up, and the outputs compared
                diff = max(float((single[i][0] - batch[i]).abs().max()) for i in range(2))
                for _ in range(3):
                    for way, fn in ways.items():
                        c0, w0 = time.process_time(), time.perf_counter()
                        fn()
                        cpu[way].append(time.process_time() - c0)
                        wall[way].append(time.perf_counter() - w0)
            lines.append(f"| {precision} | {threads} | {min(cpu['single']):.2f} / {statistics.median(cpu['single']):.2f} "
                         f"| {min(cpu['batch']):.2f} / {statistics.median(cpu['batch']):.2f} | "
                         f"{min(wall['single']):.2f} | {min(wall['batch']):.2f} | "
                         f"{_ratio(min(wall['batch']), min(wall['single']))} | {diff:.4f} (of 2.0) |")
            print(lines[-1], flush=True)
    (HERE / "results" / "gfpgan_batch.md").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------- parent
def spawn(pack: Path, args, out_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--pack", str(pack), "--runs", str(args.runs),
           "--workflows", args.workflows, "--models", str(args.models), "--out-dir", str(out_dir)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"worker for {pack} failed:\n{res.stderr[-3000:]}")
    return json.loads(next(line for line in res.stdout.splitlines() if line.startswith("JSON"))[4:])


def compare(args) -> None:
    import numpy as np

    sides = {"old": Path(args.compare).resolve(), "new": HERE.parent}
    merged: dict[str, dict] = {"old": {}, "new": {}}
    same: dict[str, list[float]] = {}
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="i2p-pack-nodes-") as tmp:
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for side in order:
                out_dir = Path(tmp) / f"{side}{r}"
                out_dir.mkdir()
                rep = spawn(sides[side], args, out_dir)
                for wf, data in rep.items():
                    slot = merged[side].setdefault(wf, {"titles": data["titles"], "classes": data["classes"],
                                                        "runs": []})
                    slot["runs"] += data["runs"]
                print(f"round {r + 1}: {side} done", flush=True)
                load.append(os.getloadavg()[0])
            for wf in args.workflows.split(","):
                for run in range(1, args.runs + 1):
                    a = np.load(Path(tmp) / f"old{r}" / f"{wf}-{run}.npy").astype(int)
                    b = np.load(Path(tmp) / f"new{r}" / f"{wf}-{run}.npy").astype(int)
                    same.setdefault(wf, []).append(float(np.abs(a - b).max()))
    write(args, merged, same, start, load)


def write(args, merged: dict, same: dict, start: str, load: list[float]) -> None:
    import onnxruntime
    import torch

    old_rev = _rev(Path(args.compare))
    new_rev = _rev(HERE.parent)
    lines = ["# The pack's own nodes, before and after (bench/pack_nodes.py)", "",
             f"Command: `.venv/bin/python bench/pack_nodes.py --compare <checkout of {old_rev}> --rounds "
             f"{args.rounds} --runs {args.runs} --workflows {args.workflows}` ({start}); new = {new_rev}.", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs; load average "
             f"{min(load):.1f}-{max(load):.1f} during the run), torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, Python "
             f"{platform.python_version()}. Models: full-size random weights. No ComfyUI: the node classes are "
             "called in-process; SDXL nodes are stood in for (see the module docstring), so I2P Face Inpaint and "
             "Apply identity are not in these tables.", "",
             f"Each side: {args.rounds} fresh processes, alternating old/new, each with one cold run and "
             f"{args.runs} warm runs on new pixels; medians over the {args.rounds * args.runs} warm runs. "
             "CPU s is the process's CPU time (all threads): on this shared machine it is the steadier figure.", ""]
    for wf in args.workflows.split(","):
        old, new = merged["old"][wf], merged["new"][wf]
        lines += [f"## {wf}", "", "| node | class | old wall s | new wall s | wall ratio | old CPU s | new CPU s "
                  "| CPU ratio |", "|---|---|---|---|---|---|---|---|"]
        tot = {"old": [0.0, 0.0], "new": [0.0, 0.0]}
        for nid in old["runs"][0]["times"]:
            med = {}
            for side, data in (("old", old), ("new", new)):
                med[side] = [statistics.median(r["times"][nid][i] for r in data["runs"]) for i in (0, 1)]
                tot[side] = [tot[side][i] + med[side][i] for i in (0, 1)]
            lines.append(f"| {old['titles'][nid]} | {old['classes'][nid]} | {med['old'][0]:.2f} | {med['new'][0]:.2f} "
                         f"| {_ratio(med['new'][0], med['old'][0])} | {med['old'][1]:.2f} | {med['new'][1]:.2f} | "
                         f"{_ratio(med['new'][1], med['old'][1])} |")
        lines.append(f"| **pack nodes together** | | {tot['old'][0]:.2f} | {tot['new'][0]:.2f} | "
                     f"{_ratio(tot['new'][0], tot['old'][0])} | {tot['old'][1]:.2f} | {tot['new'][1]:.2f} | "
                     f"{_ratio(tot['new'][1], tot['old'][1])} |")
        det = {s: sorted({r["detections"] for r in merged[s][wf]["runs"]}) for s in ("old", "new")}
        cpu = {s: statistics.median(r["detect_cpu"] for r in merged[s][wf]["runs"]) for s in ("old", "new")}
        lines += ["", f"Face detector runs per graph: old {det['old']}, new {det['new']}; CPU seconds inside the "
                  f"detector (detection, embedding, gender/age, landmarks), median per graph: old {cpu['old']:.2f}, "
                  f"new {cpu['new']:.2f} ({_ratio(cpu['new'], cpu['old'])}). Final image, new vs old "
                  f"for the same run: largest pixel difference {max(same[wf]):.0f} (of 255) over "
                  f"{len(same[wf])} runs.", ""]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


def _ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}" if old > 0.005 else "-"


def _rev(root: Path) -> str:
    res = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return res.stdout.strip() or root.name


def main() -> None:
    from comfyui_fixtures import full_models_cache

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare", help="a checkout of the older code (e.g. from `git archive`)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="warm runs per process")
    ap.add_argument("--workflows", default="fast_swap,recommended_portrait")
    ap.add_argument("--models", default=str(full_models_cache()))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gfpgan-batch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pack", default=str(HERE.parent), help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
    elif args.gfpgan_batch:
        gfpgan_batch(args)
    elif args.compare:
        compare(args)
    else:
        ap.error("give --compare OLD_CHECKOUT or --gfpgan-batch")


if __name__ == "__main__":
    main()
