"""One job on one ComfyUI server: upload, fill, submit, follow, download."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .comfy_client import ComfyClient, ComfyError, Outcome, Preview, PromptRejected, ServerLost
from .workflow_format import node_titles
from .workflow_io import fill

OK, REJECTED, FAILED, INTERRUPTED, LOST = "ok", "rejected", "failed", "interrupted", "lost"


@dataclass
class Job:
    name: str
    reference: Path
    faces: list[Path]
    seed: int | None = None


@dataclass
class JobResult:
    job: str
    status: str
    server: str = ""
    prompt_id: str = ""
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    texts: dict = field(default_factory=dict)
    message: str = ""
    attempts: int = 1

    def to_json(self) -> dict:
        return asdict(self)


def quiet() -> bool:
    return os.environ.get("I2P_QUIET", "") not in ("", "0")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# -------------------------------------------------------------------------------------------- errors
def format_rejection(exc: PromptRejected, prompt: dict) -> str:
    """ComfyUI's 400 answer, node by node, the way the editor lists it."""
    titles = node_titles(prompt)
    err = exc.error
    lines = [f"ComfyUI rejected the workflow: {err.get('message', 'invalid prompt')}"
             + (f" ({err['details']})" if err.get("details") else "")]
    for nid, info in sorted(exc.node_errors.items(), key=lambda kv: str(kv[0])):
        ctype = info.get("class_type") or prompt.get(nid, {}).get("class_type", "?")
        lines.append(f"  node {nid} '{titles.get(nid, ctype)}' ({ctype}):")
        for e in info.get("errors", []):
            detail = f": {e['details']}" if e.get("details") else ""
            lines.append(f"    {e.get('type', 'error')}: {e.get('message', '')}{detail}")
    return "\n".join(lines)


def format_outcome(outcome: Outcome, prompt: dict, verbose: bool = False) -> str:
    data = outcome.data
    nid = str(data.get("node_id", "?"))
    title = node_titles(prompt).get(nid, data.get("node_type", "?"))
    where = f"node {nid} '{title}' ({data.get('node_type', '?')})"
    if outcome.status == "interrupted":
        return f"interrupted at {where}"
    text = f"{where} failed: {data.get('exception_type', 'error')}: {data.get('exception_message', '').strip()}"
    if verbose and data.get("traceback"):
        text += "\n" + "".join(data["traceback"])
    return text


# ------------------------------------------------------------------------------------------ progress
class NodeProgress:
    """A progress bar over the prompt's nodes, with the running node's step count beside it."""

    def __init__(self, prompt: dict, label: str, enabled: bool):
        self.titles = node_titles(prompt)
        self.done: set[str] = set()
        self.current: str | None = None
        self.bar = None
        if enabled and not quiet():
            from tqdm import tqdm

            self.bar = tqdm(total=len(prompt), desc=label, unit="node", leave=True, file=sys.stderr)

    def __call__(self, event: str, data: dict) -> None:
        if self.bar is None:
            return
        if event == "execution_cached":
            self.done.update(str(n) for n in data.get("nodes", []))
        elif event == "executing" and data.get("node") is not None:
            if self.current is not None:
                self.done.add(self.current)  # the previous node finished
            self.current = str(data["node"])
            self.bar.set_postfix_str(self.titles.get(str(data["node"]), str(data["node"]))[:40])
        elif event == "progress":
            node = self.titles.get(str(data.get("node")), "")
            self.bar.set_postfix_str(f"{node[:30]} {data.get('value')}/{data.get('max')}")
        elif event == "execution_success":
            self.done.update(self.titles)
        self.bar.n = len(self.done)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------- the run
def save_outputs(client: ComfyClient, prompt_id: str, prompt: dict, job: Job, out_dir: Path,
                 include_temp: bool) -> tuple[list[str], dict]:
    """Download every saved image of the prompt; collect the text outputs nodes sent to the UI."""
    entry = client.wait_history(prompt_id)
    titles = node_titles(prompt)
    files, texts = [], {}
    for nid, ui in sorted((entry.get("outputs") or {}).items()):
        for key, items in ui.items():
            if key in ("images", "gifs"):
                for item in items:
                    kind = item.get("type", "output")
                    if kind != "output" and not include_temp:
                        continue
                    data = client.view(item["filename"], item.get("subfolder", ""), kind)
                    sub = out_dir if kind == "output" else out_dir / "previews"
                    sub.mkdir(parents=True, exist_ok=True)
                    target = sub / f"{safe_name(job.name)}_{safe_name(item['filename'])}"
                    tmp = target.with_suffix(target.suffix + ".part")
                    tmp.write_bytes(data)
                    tmp.replace(target)  # no half-written file under the final name
                    files.append(str(target))
            elif key not in ("animated",):
                texts[f"{nid} {titles.get(nid, '')}".strip() + f" / {key}"] = items
    return files, texts


def run_job(client: ComfyClient, workflow: dict, job: Job, out_dir: Path, *, previews: bool = False,
            progress: bool = True, verbose: bool = False, log: Callable[[str], None] = print,
            on_submitted: Callable[[str], None] | None = None, cancel=None) -> JobResult:
    """Run one job to its end. Network loss comes back as status ``lost`` (the batch retries it)."""
    start = time.monotonic()
    result = JobResult(job=job.name, status=FAILED, server=client.url)
    bar = None
    prompt = workflow
    try:
        reference = client.upload_image(job.reference)
        faces = [client.upload_image(f) for f in job.faces]
        prompt = fill(workflow, reference, faces, job.seed)
        bar = NodeProgress(prompt, job.name, progress)
        frames = [0]
        preview_dir = out_dir / "previews" / safe_name(job.name)

        def on_preview(p: Preview) -> None:
            if not previews:
                return
            preview_dir.mkdir(parents=True, exist_ok=True)
            frames[0] += 1
            (preview_dir / f"{frames[0]:04d}{p.suffix}").write_bytes(p.data)

        def on_event(event: str, data: dict) -> None:
            if event == "node_errors":  # accepted, but some outputs were dropped
                log(format_rejection(PromptRejected({"message": "some outputs will not run"}, data), prompt))
                return
            bar(event, data)

        extra = {"preview_method": "auto"} if previews else None
        prompt_id, outcome = client.run(prompt, on_event=on_event, on_preview=on_preview, extra_data=extra,
                                        on_submitted=on_submitted, cancel=cancel)
        result.prompt_id = prompt_id
        if outcome.status == "success":
            result.outputs, result.texts = save_outputs(client, prompt_id, prompt, job, out_dir, previews)
            result.status = OK
            result.message = f"{len(result.outputs)} image(s)"
        else:
            result.status = INTERRUPTED if outcome.status == "interrupted" else FAILED
            result.message = format_outcome(outcome, prompt, verbose)
            log(f"[{job.name}] {result.message}")
    except PromptRejected as exc:
        result.status = REJECTED
        result.message = format_rejection(exc, prompt)
        log(f"[{job.name}] {result.message}")
    except ServerLost as exc:
        result.status = LOST
        result.message = str(exc)
    except (ComfyError, ValueError, OSError) as exc:
        result.status = FAILED
        result.message = str(exc)
        log(f"[{job.name}] {result.message}")
    finally:
        if bar is not None:
            bar.close()
        result.seconds = round(time.monotonic() - start, 2)
    return result


def write_summary(results: list[JobResult], out_dir: Path, log: Callable[[str], None] = print) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps([r.to_json() for r in results], indent=2))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    width = max([len(r.job) for r in results] + [3])
    log(f"{'job':<{width}}  {'status':<11} {'seconds':>8}  server / result")
    for r in results:
        first = r.message.splitlines()[0] if r.message else ""
        log(f"{r.job:<{width}}  {r.status:<11} {r.seconds:>8.1f}  {r.server}  {first}")
    log("summary: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f" of {len(results)} job(s); details in {out_dir / 'summary.json'}")
