"""RAM each bundled workflow needs in a real ComfyUI, and what ``POST /free`` gives back.

Each workflow runs in a fresh ComfyUI server (a server that ran another graph keeps heap it never
returns to the system, so one shared server would report the largest graph for all of them), with
the full-size random-weight test models of the comfyui tier, queued as shipped through the CLI: the
photos filled in, ``steps`` and ``target_size`` lowered for CPU speed (tests/shipped_workflows.py),
nothing else changed, content-safety gate on. Measured from /proc: the server's RSS once idle,
its peak (VmHWM) over the run, and its RSS after ``/free`` with ``unload_models`` and then with
``free_memory`` too.

usage (starts servers of up to ~21 GB: hold the machine's heavy-work lock):
    COMFYUI_PATH=/path/to/ComfyUI ~/.cache/ip_to_portrait/comfy-venv/bin/python bench/workflow_memory.py \
        [--extra-args "--bf16-unet"] [--workflows fast_swap,pre_paste] [--steps 2] [--target-size 256]
writes bench/results/workflow_memory.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
RESULTS = HERE / "results" / "workflow_memory.md"

import comfyui_fixtures as cf  # noqa: E402
import shipped_workflows as sw  # noqa: E402
from packload import pack_module  # noqa: E402

GIB = 2**30


def _settle(server: cf.ComfyServer, seconds: float = 60.0, still: int = 5) -> int:
    """RSS once it has not moved for ``still`` seconds in a row."""
    last, calm = server.rss_bytes()[0], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and calm < still:
        time.sleep(1.0)
        now = server.rss_bytes()[0]
        calm = calm + 1 if abs(now - last) < 8 * 2**20 else 0
        last = now
    return last


def _free(server: cf.ComfyServer, free_memory: bool, release_line: bool = True) -> int:
    """``POST /free`` and the RSS after it. ComfyUI acts on /free in its prompt worker, which may still
    be busy with the finished prompt: wait for the pack's release line first (every workflow loads
    some of the pack's models; a second /free has nothing of the pack's left), then for the RSS to
    settle."""
    marker = len(server.log_text())
    server.free_memory(unload_models=True, free_memory=free_memory)
    deadline = time.monotonic() + 120
    while release_line and "[IP-to-Portrait] released" not in server.log_text()[marker:] and time.monotonic() < deadline:
        time.sleep(0.5)
    return _settle(server, still=5 if release_line else 15)


def _photos(folder: Path) -> tuple[Path, list[Path]]:
    from PIL import Image
    from skimage import data as skdata

    ref, face, face2 = folder / "ref.png", folder / "face.png", folder / "face2.png"
    Image.fromarray(skdata.astronaut()).save(ref)
    Image.fromarray(skdata.astronaut()).resize((384, 384)).save(face)
    Image.fromarray(skdata.astronaut()[::-1].copy()).save(face2)
    return ref, [face, face2]


def measure(name: str, comfy_path: Path, models: dict, cache: Path, extra_args: list[str], knobs: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"i2p-mem-{name}-") as tmp:
        tmp = Path(tmp)
        dirs = cf.prepare_base_dir(tmp / "base")
        cf.link_models(models.values(), cache, dirs["models"])
        server = cf.ComfyServer(comfy_path, dirs["base"], extra_args=extra_args).start()
        try:
            idle = _settle(server)
            shipped = sw.shipped(name)
            io_ = pack_module("cli.workflow_io")
            ref, faces = _photos(tmp)
            path = tmp / f"{name}.json"
            path.write_text(json.dumps(sw.for_cpu(shipped, knobs)))
            argv = ["run", "--workflow", str(path), "--reference", str(ref), "--out", str(tmp / "out"),
                    "--server", server.url]
            seed = sw.shipped_seed(shipped)
            argv += ["--seed", str(seed)] if seed is not None else []
            for f in faces[:io_.face_count(shipped)]:
                argv += ["--face", str(f)]
            t0 = time.monotonic()
            rc = pack_module("cli.main").main(argv)
            seconds = time.monotonic() - t0
            if rc != 0:
                raise RuntimeError(f"{name} failed:\n{server.log_tail(40)}")
            _, peak = server.rss_bytes()
            after_run = _settle(server, 20)
            after_unload = _free(server, free_memory=False)
            after_free = _free(server, free_memory=True, release_line=False)
        finally:
            server.stop()
    return {"workflow": name, "seconds": seconds, "idle": idle, "peak": peak, "after_run": after_run,
            "after_unload": after_unload, "after_free": after_free}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # the cheapest and the recommended graph first: results are written after each workflow
    order = ["fast_swap", "recommended_portrait"]
    p.add_argument("--workflows", default=",".join(order + [n for n in sw.names() if n not in order]))
    p.add_argument("--extra-args", default="--bf16-unet", help="more ComfyUI flags (default: --bf16-unet)")
    p.add_argument("--steps", type=int, default=sw.CPU_KNOBS["steps"])
    p.add_argument("--target-size", type=int, default=sw.CPU_KNOBS["target_size"])
    args = p.parse_args()
    comfy_path = Path(os.environ["COMFYUI_PATH"])
    cache = cf.full_models_cache()
    ids = [m.id for m in pack_module("models.manifest").MODELS]
    built, skipped = cf.build_models_in_subprocess(cache, ids)
    knobs = {"steps": args.steps, "target_size": args.target_size}
    rows = []
    for name in args.workflows.split(","):
        try:
            row = measure(name, comfy_path, built, cache, shlex.split(args.extra_args), knobs)
        except RuntimeError as exc:  # a graph the test models cannot run yet: say so, measure the rest
            print(f"{name}: not measured: {str(exc)[:300]}", flush=True)
            continue
        print(json.dumps(row), flush=True)
        rows.append(row)
        write_results(rows, args, skipped)


def write_results(rows: list[dict], args, skipped: dict) -> None:
    lines = [
        "# RAM of the bundled workflows in a real ComfyUI (CPU)", "",
        f"`{' '.join(['bench/workflow_memory.py', *sys.argv[1:]])}`; ComfyUI `--cpu {args.extra_args}`, one fresh "
        f"server per workflow, full-size random-weight test models, shipped files with steps {args.steps}, "
        f"target_size {args.target_size}, content-safety gate on. {platform.machine()}, "
        f"{os.cpu_count()} cores; other jobs shared the machine, so times are rough.", "",
        "| workflow | idle server | peak during the run | after the run | after /free unload_models | after /free unload_models + free_memory | run time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['workflow']} | {r['idle'] / GIB:.2f} GiB | {r['peak'] / GIB:.2f} GiB | "
                     f"{r['after_run'] / GIB:.2f} GiB | {r['after_unload'] / GIB:.2f} GiB | "
                     f"{r['after_free'] / GIB:.2f} GiB | {r['seconds']:.0f} s |")
    if skipped:
        lines += ["", f"test models not built: {skipped}"]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
