"""Where the time goes: every bundled workflow, run as shipped through ComfyUI's own executor, timed
per node.

Each workflow gets a fresh private ComfyUI (so its peak memory is its own) with the full-size
random-weight test models (``tests/model_factory``; SDXL, CLIP ViT-H, buffalo_l, inswapper, GFPGAN ...
in their real sizes). One cold run (models load from disk) is followed by ``--runs`` warm runs, each
on new pixels so no node result is reused from ComfyUI's cache except the model loaders'.

Per-node times come from the executor's own websocket events: ComfyUI sends ``executing`` when a
node starts and the next ``executing`` (or the end of the prompt) when it is done, one node at a
time, so the gap between two events is that node's wall time as the executor saw it (client-side
timestamps; the loopback latency is well under a millisecond).

The only edits to a shipped workflow are the CPU knobs recorded in the result (``steps``,
``target_size``) and the photos: the same rule as the ``comfyui`` test tier.

usage: COMFYUI_PATH=/path/to/ComfyUI <ComfyUI's python> bench/workflows.py [--runs 2] [--steps 2]
       [--target-size 256] [--extra-args "--bf16-unet"] [--device cpu] [--workflows fast_swap,...]
writes bench/results/workflows-<device>.md
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import shipped_workflows as sw  # noqa: E402
from comfyui_fixtures import (ComfyServer, build_models_in_subprocess, full_models_cache,  # noqa: E402
                              link_models, prepare_base_dir)
from packload import pack_module  # noqa: E402

DIFFUSION_NODES = {"I2PFaceInpaint", "KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}


@dataclass
class Run:
    seconds: float
    nodes: dict[str, float] = field(default_factory=dict)  # node id -> seconds
    cached: list[str] = field(default_factory=list)


def node_times(events: list[tuple[float, str, dict]]) -> tuple[dict[str, float], list[str]]:
    """Per-node wall seconds from the ordered (time, event, data) stream of one prompt."""
    times: dict[str, float] = {}
    cached: list[str] = []
    current, started = None, 0.0
    for t, event, data in events:
        if event == "execution_cached":
            cached += [str(n) for n in data.get("nodes", [])]
        if event in ("executing", "execution_success", "execution_error"):
            if current is not None:
                times[current] = times.get(current, 0.0) + (t - started)
                current = None
            if event == "executing" and data.get("node") is not None:
                current, started = str(data["node"]), t
    return times, cached


def photos(run: int, faces: int) -> tuple[bytes, list[bytes]]:
    """New pixels for every run (a seeded shift of the astronaut), so nothing downstream is cached."""
    from skimage import data as skdata

    rng = np.random.default_rng(run)
    base = skdata.astronaut().astype(np.int16)
    ref = np.clip(base + rng.integers(-6, 7, size=base.shape), 0, 255).astype(np.uint8)
    out = []
    for i in range(faces):
        face = base[::-1] if i % 2 else base
        face = np.clip(face + rng.integers(-6, 7, size=face.shape), 0, 255).astype(np.uint8)
        out.append(face)
    return _png(ref), [_png(f) for f in out]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def run_once(server: ComfyServer, client, prompt: dict, run: int) -> Run:
    workflow_io = pack_module("cli.workflow_io")
    n_faces = workflow_io.face_count(prompt)
    ref, faces = photos(run, n_faces)
    ref_name = server.upload_image(ref, f"bench_ref_{run}.png")
    face_names = [server.upload_image(f, f"bench_face{i}_{run}.png") for i, f in enumerate(faces)]
    filled = workflow_io.fill(prompt, ref_name, face_names, seed=run)
    events: list[tuple[float, str, dict]] = []
    t0 = time.perf_counter()
    _, outcome = client.run(filled, on_event=lambda e, d: events.append((time.perf_counter(), e, d)))
    seconds = time.perf_counter() - t0
    if outcome.status != "success":
        raise RuntimeError(f"run {run} ended {outcome.status}: {json.dumps(outcome.data)[:2000]}\n"
                           f"{server.log_tail(40)}")
    nodes, cached = node_times(events)
    return Run(seconds, nodes, cached)


def kind(class_type: str) -> str:
    if class_type in DIFFUSION_NODES:
        return "sampling"
    return "pack" if class_type.startswith("I2P") else "core"


def report(name: str, prompt: dict, cold: Run, warm: list[Run], rss: dict) -> list[str]:
    lines = [f"## {name}", ""]
    total = statistics.median(r.seconds for r in warm) if warm else cold.seconds
    lines.append(f"Cold run {cold.seconds:.1f} s (models load from disk); warm runs "
                 f"{', '.join(f'{r.seconds:.1f}' for r in warm)} s (median {total:.1f} s). "
                 f"Server RSS: peak {rss['peak'] / 2**30:.2f} GiB, after the runs {rss['after'] / 2**30:.2f} GiB "
                 f"(what /free gives back: bench/results/workflow_memory.md).")
    lines += ["", "| node | class | kind | cold s | warm min s | warm median s | share of warm |",
              "|---|---|---|---|---|---|---|"]
    shares = {"pack": 0.0, "sampling": 0.0, "core": 0.0}
    order = sorted(prompt, key=lambda nid: -(statistics.median(r.nodes.get(nid, 0.0) for r in warm) if warm else 0))
    for nid in order:
        ct = prompt[nid]["class_type"]
        w = [r.nodes.get(nid, 0.0) for r in warm] or [0.0]
        med = statistics.median(w)
        shares[kind(ct)] += med
        title = (prompt[nid].get("_meta") or {}).get("title", ct)
        lines.append(f"| {nid} {title} | {ct} | {kind(ct)} | {cold.nodes.get(nid, 0.0):.2f} | {min(w):.2f} | "
                     f"{med:.2f} | {100 * med / total if total else 0:.1f} % |")
    lines += ["", "Shares of the warm median: " + ", ".join(
        f"{k} {100 * v / total if total else 0:.1f} % ({v:.2f} s)" for k, v in shares.items())
        + "; `sampling` includes I2P Face Inpaint, whose crop, VAE and stitch run around ComfyUI's sampler "
          "inside that one node.", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="a ComfyUI checkout")
    ap.add_argument("--runs", type=int, default=2, help="warm runs after the cold one")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--target-size", type=int, default=256)
    ap.add_argument("--extra-args", default="--bf16-unet", help="more ComfyUI main.py flags")
    ap.add_argument("--device", default="cpu", help="label of the results file")
    ap.add_argument("--workflows", default="", help="comma-separated names (default: all bundled); an existing "
                    "results file keeps the other workflows' sections")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not args.comfyui or not (Path(args.comfyui) / "main.py").is_file():
        ap.error("--comfyui (or $COMFYUI_PATH) must name a ComfyUI checkout")

    knobs = {"steps": args.steps, "target_size": args.target_size}
    first = ["fast_swap", "recommended_portrait"]  # the cheapest and the recommended graph first
    names = [n for n in args.workflows.split(",") if n] or first + [n for n in sw.names() if n not in first]
    target = Path(args.out) if args.out else HERE / "results" / f"workflows-{args.device}.md"
    previous = target.read_text() if args.workflows and target.is_file() else None
    import model_factory

    cache = full_models_cache()
    built, skipped = build_models_in_subprocess(cache, [m.id for m in model_factory.manifest().MODELS])
    client_mod = pack_module("cli.comfy_client")
    subset = f" --workflows {args.workflows}" if args.workflows else ""
    out = [f"# Bundled workflows, per node ({args.device})", "",
           f"Command: `COMFYUI_PATH=/path/to/ComfyUI python bench/workflows.py --runs {args.runs} --steps "
           f"{args.steps} --target-size {args.target_size} --extra-args \"{args.extra_args}\" "
           f"--device {args.device}{subset}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
           f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
           f"load average at start {os.getloadavg()[0]:.1f}. Models: full-size, random weights "
           f"({len(built)} files; skipped: {', '.join(skipped) or 'none'}). Knobs: steps={args.steps}, "
           f"target_size={args.target_size}; everything else as shipped.", ""]
    for name in names:
        prompt = sw.for_cpu(sw.shipped(name), knobs)
        with tempfile.TemporaryDirectory(prefix="i2p-bench-") as tmp:
            base = Path(tmp)
            dirs = prepare_base_dir(base)
            link_models(built.values(), cache, dirs["models"])
            server = ComfyServer(Path(args.comfyui), base, python=sys.executable,
                                 extra_args=shlex.split(args.extra_args)).start()
            try:
                client = client_mod.ComfyClient(server.url, timeout=600)
                cold = run_once(server, client, prompt, 0)
                warm = [run_once(server, client, prompt, i + 1) for i in range(args.runs)]
                cur, peak = server.rss_bytes()
            except RuntimeError as exc:  # a graph that fails is reported, the others still measured
                out += [f"## {name}", "", f"Failed: {str(exc)[:600]}", ""]
                _write(target, out, previous)
                continue
            finally:
                server.stop()
        out += report(name, prompt, cold, warm, {"peak": peak, "after": cur})
        # after each workflow: a long run stopped half-way keeps what it measured
        _write(target, out, previous)
        print(f"{name}: done, {target} updated", flush=True)
    return 0


def sections(text: str) -> tuple[str, dict[str, str]]:
    """(the text before the first ``## `` heading, workflow name -> its section text)."""
    parts = ("\n" + text).split("\n## ")
    head, out = parts[0].lstrip("\n"), {}
    for part in parts[1:]:
        out[part.split("\n", 1)[0].strip()] = "## " + part.rstrip("\n") + "\n"
    return head, out


def merged(old: str, new: str) -> str:
    """``old`` with each workflow section of ``new`` in place of its own (new ones at the end), and
    ``new``'s header, which names the command of the re-run, after ``old``'s (kept: it describes the
    sections that were not re-run)."""
    old_head, old_sections = sections(old)
    new_head, new_sections = sections(new)
    note = "\n".join(line for line in new_head.splitlines() if not line.startswith("# "))
    head = old_head.rstrip("\n") + "\n\nRe-run of " + ", ".join(new_sections) + ":" + note.rstrip("\n") + "\n\n"
    body = {**old_sections, **new_sections}
    return head + "\n".join(body[name] for name in body)


def _write(target: Path, lines: list[str], base: str | None = None) -> None:
    """``base``: the results file as it was before a run of some workflows, whose other sections stay."""
    text = "\n".join(lines) + "\n"
    if base is not None:
        text = merged(base, text)
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(target)


if __name__ == "__main__":
    sys.exit(main())
