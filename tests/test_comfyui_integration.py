"""The pack inside a real ComfyUI (tier ``comfyui``), plus CI checks of that tier's own machinery.

Run the real tier with the venv from tests/integration/setup_comfyui_env.sh:
    COMFYUI_PATH=/path/to/ComfyUI /path/to/comfy-venv/bin/python -m pytest -m comfyui
"""
from __future__ import annotations

import io
import json
import math
import re
import struct
from pathlib import Path

import pytest

import comfyui_fixtures as cf
import model_factory
from model_factory import sdxl_checkpoint

SDXL_ID = "realvisxl-v4-inpainting"
PACK_FOLDERS = ("ipadapter", "insightface", "facerestore_models", "facedetection", "ghost", "nsfw_detector")


def _safetensors_header(path: Path) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


# ===================================================================================== CI tier
def test_tiny_sdxl_checkpoint_has_sdxl_inpaint_layout(test_models):
    path = test_models.get(SDXL_ID)
    assert path.name == "RealVisXL_V4.0_inpainting.safetensors" and path.parent.name == "checkpoints"
    header = _safetensors_header(path)
    keys = [k for k in header if k != "__metadata__"]
    for prefix in ("model.diffusion_model.", "first_stage_model.", "conditioner.embedders.0.",
                   "conditioner.embedders.1."):
        assert any(k.startswith(prefix) for k in keys), prefix
    assert header["model.diffusion_model.input_blocks.0.0.weight"]["shape"][1] == 9  # inpaint UNet
    assert max(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__") < 10_000

    from safetensors.torch import load_file

    sd = load_file(str(path))
    assert len(sd) == len(keys)
    assert sd["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"].tolist() == [list(range(77))]
    assert all(t.isfinite().all() for t in sd.values() if t.is_floating_point())


def test_tiny_sdxl_checkpoint_is_seeded(tmp_path):
    a = model_factory.build(SDXL_ID, tmp_path / "a", "tiny")
    b = model_factory.build(SDXL_ID, tmp_path / "b", "tiny")
    assert a.read_bytes() == b.read_bytes()


def test_streamed_safetensors_writer_matches_the_library(tmp_path):
    import torch
    from safetensors.torch import load_file

    entries = [("b.weight", "F16", (3, 4), sdxl_checkpoint.random_fp16("b.weight", (3, 4))),
               ("a.norm.weight", "F16", (5,), sdxl_checkpoint.random_fp16("a.norm.weight", (5,))),
               ("ids", "I64", (1, 3), lambda: struct.pack("<3q", 0, 1, 2))]
    size = sdxl_checkpoint.write_safetensors(tmp_path / "x.safetensors", entries, {"k": "v"})
    assert size == (tmp_path / "x.safetensors").stat().st_size
    sd = load_file(str(tmp_path / "x.safetensors"))
    assert sd["b.weight"].dtype == torch.float16 and sd["b.weight"].shape == (3, 4)
    assert sd["a.norm.weight"].tolist() == [1.0] * 5  # norm scales start at one
    assert sd["ids"].tolist() == [[0, 1, 2]]
    assert float(sd["b.weight"].float().std()) > 0.1  # N(0, 1/fan_in), fan_in 4


def test_full_sdxl_build_explains_that_it_needs_comfyui(tmp_path, monkeypatch):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    with pytest.raises(RuntimeError, match="COMFYUI_PATH"):
        sdxl_checkpoint.build_sdxl_inpainting(tmp_path / "x.safetensors", "full")


def test_wanted_model_ids():
    ids = ["a", "b", "c"]
    assert cf.wanted_model_ids(ids, None) == ids
    assert cf.wanted_model_ids(ids, " ") == ids
    assert cf.wanted_model_ids(ids, "none") == []
    assert cf.wanted_model_ids(ids, "c, a") == ["c", "a"]
    with pytest.raises(ValueError, match="unknown manifest ids"):
        cf.wanted_model_ids(ids, "a,zzz")


def test_base_dir_links_the_pack_and_cached_models(tmp_path):
    cache = tmp_path / "cache"
    built, skipped = cf.build_models(cache, [SDXL_ID, "no-such-id"], profile="tiny")
    assert list(built) == [SDXL_ID] and "no-such-id" in skipped and "KeyError" in skipped["no-such-id"]
    dirs = cf.prepare_base_dir(tmp_path / "base")
    assert dirs["pack_link"].is_symlink() and (dirs["pack_link"] / "__init__.py").is_file()
    links = cf.link_models(built.values(), cache, dirs["models"])
    assert links == [dirs["models"] / "checkpoints" / "RealVisXL_V4.0_inpainting.safetensors"]
    assert links[0].is_symlink() and links[0].resolve() == built[SDXL_ID].resolve()
    cf.link_models(built.values(), cache, dirs["models"])  # again: replaces, does not fail
    yaml_text = dirs["extra_model_paths"].read_text()
    assert f"base_path: {dirs['extra_models']}" in yaml_text and "ipadapter: ipadapter" in yaml_text


def test_server_command_is_loopback_cpu_and_keeps_comfyui_tree_clean(tmp_path):
    cmd = cf.server_command(Path("/opt/ComfyUI"), tmp_path, 8199, python="/venv/bin/python")
    assert cmd[:2] == ["/venv/bin/python", "/opt/ComfyUI/main.py"]
    joined = " ".join(cmd)
    for part in ("--cpu", "--listen 127.0.0.1", "--port 8199", f"--base-directory {tmp_path}",
                 "--disable-api-nodes", "--preview-method latent2rgb",
                 f"--database-url sqlite:///{tmp_path / 'comfyui.db'}"):
        assert part in joined


def test_full_models_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv(cf.CACHE_ENV, str(tmp_path / "c"))
    assert cf.full_models_cache() == tmp_path / "c"
    monkeypatch.delenv(cf.CACHE_ENV)
    assert cf.full_models_cache() == Path.home() / ".cache" / "ip_to_portrait" / "test-models" / "full"


def test_pack_import_failures_are_found_and_others_ignored():
    ok = "\n".join([
        "Traceback (most recent call last):",
        '  File "/c/custom_nodes/other_pack/__init__.py", line 1, in <module>',
        "ModuleNotFoundError: No module named 'x'",
        "Cannot import /c/custom_nodes/other_pack module for custom nodes: No module named 'x'",
        "Import times for custom nodes:",
        "   0.1 seconds: /c/custom_nodes/ip_to_portrait",
        "   0.0 seconds (IMPORT FAILED): /c/custom_nodes/other_pack",
    ])
    assert cf.pack_import_failures(ok) == []
    failed = "\n".join([
        "Traceback (most recent call last):",
        '  File "/c/custom_nodes/ip_to_portrait/nodes/x.py", line 3, in <module>',
        "ImportError: attempted relative import beyond top-level package",
        "Cannot import /c/custom_nodes/ip_to_portrait module for custom nodes: attempted ...",
        "   0.0 seconds (IMPORT FAILED): /c/custom_nodes/ip_to_portrait",
    ])
    found = cf.pack_import_failures(failed)
    assert len(found) == 2 and "relative import" in found[0] and "IMPORT FAILED" in found[1]


# =============================================================================== comfyui tier
def _pack_node_ids(pack) -> set[str]:
    return set(pack.NODE_CLASS_MAPPINGS)


@pytest.mark.comfyui
@pytest.mark.timeout(3600)  # the first test also builds the full test models (cached afterwards)
def test_server_loads_the_pack_cleanly(comfyui_server, pack):
    info = comfyui_server.object_info()
    ours = {k: v for k, v in info.items() if k.startswith("I2P")}
    missing = _pack_node_ids(pack) - set(ours)
    assert not missing, f"nodes missing from /object_info: {sorted(missing)}\n{comfyui_server.log_tail()}"
    assert set(ours) == _pack_node_ids(pack)
    for node_id, node in ours.items():
        assert node["category"].startswith("IP-to-Portrait/"), node_id
        assert cf.PACK_DIR_NAME in node["python_module"], node_id
    log = comfyui_server.log_text()
    assert cf.pack_import_failures(log) == [], log
    assert f"custom_nodes/{cf.PACK_DIR_NAME}" in log  # it is in ComfyUI's import-times table
    assert "CheckpointLoaderSimple" in info and "InpaintModelConditioning" in info


@pytest.mark.comfyui
def test_pack_model_folders_are_registered_and_extra_paths_kept(comfyui_server):
    folders = set(comfyui_server.get_json("/models"))
    assert set(PACK_FOLDERS) <= folders, sorted(folders)
    dirs = comfyui_server.dirs
    # a path from extra_model_paths.yaml stays (the yaml registered it before the pack loaded) ...
    (dirs["extra_models"] / "ipadapter" / "from_yaml.safetensors").write_bytes(b"x")
    # ... and the pack adds its default folder next to it
    (dirs["models"] / "ipadapter").mkdir(exist_ok=True)
    (dirs["models"] / "ipadapter" / "from_default.bin").write_bytes(b"x")
    listed = comfyui_server.models("ipadapter")
    assert "from_yaml.safetensors" in listed and "from_default.bin" in listed, listed
    # a folder only the pack knows gets the pack's extensions, .onnx included
    (dirs["models"] / "ghost").mkdir(exist_ok=True)
    for name in ("probe.onnx", "probe.pth", "notes.txt"):
        (dirs["models"] / "ghost" / name).write_bytes(b"x")
    ghost = comfyui_server.models("ghost")
    assert "probe.onnx" in ghost and "probe.pth" in ghost and "notes.txt" not in ghost, ghost
    if "buffalo_l-det_10g" in comfyui_server.built_models:
        assert "models/buffalo_l/det_10g.onnx" in comfyui_server.models("insightface")


def _input_png(size: int = 256) -> bytes:
    """A gradient RGBA picture whose transparent centre square is the area to inpaint."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = x * 255 // size
    rgba[..., 1] = y * 255 // size
    rgba[..., 2] = 128
    rgba[..., 3] = 255
    q = size // 4
    rgba[q:3 * q, q:3 * q, 3] = 0  # LoadImage's MASK is 1 - alpha
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def sdxl_inpaint_prompt(ckpt: str, image: str, steps: int = 2, seed: int = 7) -> dict:
    """API-format prompt: checkpoint -> inpaint conditioning -> KSampler -> decode -> save."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait photo", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": image}},
        "5": {"class_type": "InpaintModelConditioning",
              "inputs": {"positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "pixels": ["4", 0],
                         "mask": ["4", 1], "noise_mask": True}},
        "6": {"class_type": "KSampler",
              "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler",
                         "scheduler": "normal", "positive": ["5", 0], "negative": ["5", 1],
                         "latent_image": ["5", 2], "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "i2p_integration"}},
    }


@pytest.mark.comfyui
@pytest.mark.timeout(1200)
def test_full_sdxl_inpaint_checkpoint_samples_in_comfyui(comfyui_server):
    if SDXL_ID not in comfyui_server.built_models:
        pytest.fail(f"the full SDXL test checkpoint was not built: {comfyui_server.skipped_models.get(SDXL_ID)}")
    ckpt = comfyui_server.built_models[SDXL_ID].name
    assert ckpt in comfyui_server.models("checkpoints")
    image = comfyui_server.upload_image(_input_png(), "i2p_integration_input.png")
    run = comfyui_server.run_prompt(sdxl_inpaint_prompt(ckpt, image, steps=2), timeout=1100)
    assert run.succeeded, f"{run.error}\n{comfyui_server.log_tail()}"
    progress = [p for p in run.of_type("progress") if p.get("node") == "6"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 2, progress
    frames = run.previews  # cli.comfy_client.Preview: the picture frames the websocket carried
    assert frames, "no latent preview frames arrived over the websocket"
    from PIL import Image

    Image.open(io.BytesIO(frames[-1].data)).verify()
    executed = {e["node"] for e in run.of_type("executing") if e.get("node")}
    assert {"1", "5", "6", "7", "8"} <= executed
    log = comfyui_server.log_text()
    assert "Requested to load SDXL" in log  # ComfyUI took the file for SDXL (model_base.SDXL)

    (out,) = comfyui_server.output_images(run.history)
    img = Image.open(io.BytesIO(comfyui_server.view(out["filename"], out["subfolder"], out["type"])))
    assert img.size == (256, 256)
    comfyui_server.prompt_seconds = run.seconds
    print(f"\n[i2p test] SDXL inpaint prompt (2 steps, 256 px, fresh model load): {run.seconds:.1f} s; "
          f"server RSS now/peak: {[round(v / 2**30, 2) for v in (comfyui_server.rss_bytes() or (0, 0))]} GiB")


# ------------------------------------------------- ComfyServer against a stand-in main.py (CI tier)
FAKE_MAIN = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = sys.argv[1:]
if "--fail" in args:
    print("Traceback (most recent call last):\nRuntimeError: cannot start", flush=True)
    sys.exit(3)
port = int(args[args.index("--port") + 1])
HISTORY = {"p1": {"status": {"completed": True, "status_str": "success"},
                  "outputs": {"8": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}}}}


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype="application/json"):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path == "/system_stats":
            return self.reply(200, {"system": {}})
        if self.path.startswith("/history/"):
            pid = self.path.rsplit("/", 1)[1]
            return self.reply(200, {pid: HISTORY[pid]} if pid in HISTORY else {})
        if self.path.startswith("/view?"):
            return self.reply(200, b"PNGDATA", "image/png")
        return self.reply(404, {})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/prompt":
            prompt = json.loads(body)["prompt"]
            if not prompt:
                return self.reply(400, {"error": {"type": "prompt_no_outputs"}, "node_errors": {}})
            return self.reply(200, {"prompt_id": "p1", "number": 0, "node_errors": {}})
        if self.path == "/upload/image":
            ok = b'filename="in.png"' in body and b"PNGBYTES" in body
            return self.reply(200 if ok else 400, {"name": "in.png", "subfolder": "", "type": "input"})
        return self.reply(404, {})


print("fake comfyui listening", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


@pytest.fixture
def fake_comfy(tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(FAKE_MAIN)
    base = tmp_path / "base"
    cf.prepare_base_dir(base)
    return comfy, base


def test_comfy_server_lifecycle_and_http_helpers(fake_comfy):
    comfy, base = fake_comfy
    server = cf.ComfyServer(comfy, base).start(timeout=60)
    try:
        assert server.start_seconds is not None and server.url == f"http://127.0.0.1:{server.port}"
        assert server.get_json("/system_stats") == {"system": {}}
        with pytest.raises(cf.PromptRejected) as rejected:
            server.queue_prompt({})
        assert rejected.value.error["type"] == "prompt_no_outputs"
        status, body = server.post_prompt({})
        assert status == 400 and "node_errors" in body
        prompt_id = server.queue_prompt({"1": {"class_type": "X", "inputs": {}}})
        history = server.wait_for_history(prompt_id, timeout=30)
        (img,) = server.output_images(history)
        assert server.view(img["filename"], img["subfolder"], img["type"]) == b"PNGDATA"
        assert server.upload_image(b"PNGBYTES", "in.png") == "in.png"
        current, peak = server.rss_bytes()
        assert 0 < current <= peak
        assert "fake comfyui listening" in server.log_text()
    finally:
        server.stop()
    assert server.process.poll() is not None and server.peak_rss_bytes > 0
    server.stop()  # a second stop is harmless


def test_comfy_server_that_dies_at_start_reports_its_log(fake_comfy):
    comfy, base = fake_comfy
    server = cf.ComfyServer(comfy, base, extra_args=["--fail"])
    with pytest.raises(RuntimeError, match="(?s)exited with 3.*cannot start"):
        server.start(timeout=60)


def test_comfy_server_runs_a_prompt_over_the_websocket(tmp_path):
    """run_prompt, upload, view and /free through the CLI's client, against the protocol fake."""
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import fake_comfyui\nfake_comfyui.main(sys.argv[1:])\n")
    base = tmp_path / "base"
    cf.prepare_base_dir(base)
    server = cf.ComfyServer(comfy, base).start(timeout=60)
    try:
        name = server.upload_image(_input_png(32), "in.png")
        prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
        run = server.run_prompt(prompt, timeout=60)
        assert run.succeeded and run.prompt_id and run.history, run.events
        assert {e["node"] for e in run.of_type("executing") if e.get("node")} == {"1", "2"}
        (out,) = server.output_images(run.history)
        assert server.view(out["filename"], out["subfolder"], out["type"]).startswith(b"\x89PNG")
        server.free_memory()
    finally:
        server.stop()


def test_no_path_of_a_development_machine_in_the_project():
    """Defaults and docs name generic places (COMFYUI_PATH, ~/.cache/...), never a path of the machine
    the pack was developed on."""
    root = Path(__file__).resolve().parent.parent
    bad = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in (".git", ".venv") or "__pycache__" in rel.parts:
            continue
        if path.suffix.lower() not in (".py", ".sh", ".md", ".toml", ".txt", ".json", ".yaml", ".yml", ".cfg", ".ini", ""):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for hit in re.finditer(r"(?<![\w.~])/(?:work|root)/[\w.-]+", text):
            bad.append(f"{rel}: {hit.group(0)}")
    assert not bad, bad


@pytest.mark.comfyui
@pytest.mark.timeout(1800)
def test_managed_models_survive_comfyuis_own_model_patcher(tmp_path):
    """tests/test_managed_models.py again, on ComfyUI's real ModelPatcher and model_management (CI runs
    it on an imitation of their operations), in a child process: importing ComfyUI here would make the
    pack in this process believe it runs inside ComfyUI."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, I2P_REAL_COMFY_PATCHER=os.environ["COMFYUI_PATH"])
    env.pop("I2P_MODELS_DIR", None)
    tests = Path(__file__).resolve().parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                           str(tmp_path / "t"), str(tests / "test_managed_models.py")],
                          cwd=tests.parent, env=env, capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0 and " passed" in proc.stdout and "skipped" not in proc.stdout, \
        proc.stdout[-4000:] + proc.stderr[-2000:]
