"""``python -m ip_to_portrait portrait`` from nothing to a portrait, against test doubles only: the
installer is ``comfy_cli_double.py`` (it writes a ComfyUI whose server is the fake ComfyUI speaking the
real protocol), the model host is the loopback ``download_server.py``, the photos are the bundled
samples. Nothing leaves the machine (conftest's network guard)."""
from __future__ import annotations

import json
import re
import shlex
import socket
import sys
from pathlib import Path

import pytest
from PIL import Image

from download_server import CUT_AT, DATA, serving, sources_for, url_of
from packload import PACK_ROOT, pack_module

TESTS = Path(__file__).resolve().parent
SAMPLES = PACK_ROOT / "samples"
home_mod = pack_module("cli.comfyui_home")
portrait = pack_module("cli.portrait_cmd")
manifest = pack_module("models.manifest")
workflow_models = pack_module("models.workflow_models")
workflow_io = pack_module("cli.workflow_io")

FAST_SWAP_IDS = ["buffalo_l-det_10g", "buffalo_l-w600k_r50", "buffalo_l-genderage", "buffalo_l-2d106det",
                 "buffalo_l-1k3d68", "inswapper_128", "gfpgan-v1.4", "nsfw-vit", "nsfw-vit-config"]


def cli(*argv: str) -> int:
    return pack_module("cli.main").main(list(argv))


def bundled(name: str) -> dict:
    return workflow_io.load_workflow(name)


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A machine with no ComfyUI: empty per-user folder, no COMFYUI_PATH, the installer double, no GPU."""
    monkeypatch.setenv("I2P_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.setenv("I2P_COMFY_CLI", f"{sys.executable} {TESTS / 'comfy_cli_double.py'}")
    monkeypatch.setattr(home_mod, "enclosing_comfyui", lambda pack_root=None: None)
    monkeypatch.setattr(portrait, "detect_gpu", lambda: None)
    return tmp_path


@pytest.fixture()
def host(tmp_path, monkeypatch):
    """The loopback model host, with every downloadable manifest id pointed at it ($I2P_MODEL_SOURCES)."""
    with serving() as srv:
        path = tmp_path / "sources.json"
        sources = sources_for(srv, [m.id for m in manifest.MODELS if m.sha256 or m.size])  # what has a file URL
        path.write_text(json.dumps(sources))
        monkeypatch.setenv("I2P_MODEL_SOURCES", str(path))
        srv.sources_path, srv.sources = path, sources
        yield srv


def argv(out: Path, *extra: str) -> list[str]:
    return ["portrait", "--reference", str(SAMPLES / "reference.jpg"), "--face", str(SAMPLES / "face.jpg"),
            "--out", str(out), "--seed", "5", *extra]


def readme_argv(out: Path) -> list[str]:
    """The README's first command (its ``python -m ip_to_portrait`` part), paths made absolute."""
    block = re.search(r"## A fresh machine: two commands\n\n```bash\n(.*?)\n", (PACK_ROOT / "README.md").read_text())
    command = next(part for part in block.group(1).split("&&") if "-m ip_to_portrait" in part)
    words = shlex.split(command)
    words = words[words.index("ip_to_portrait") + 1:]
    return [str(out) if w == "out/" else str(PACK_ROOT / w) if w.startswith("samples/") else w for w in words]


def models_dir(env: Path) -> Path:
    return env / "home" / "ComfyUI" / "models"


# --------------------------------------------------------------------------------------- happy path
def test_fresh_machine_to_a_portrait_file(env, host, monkeypatch, capsys):
    """The README's first command: install (double) -> link -> nine downloads after one "y", one of
    them cut and resumed -> private server -> result, score, licences."""
    host.sources["gfpgan-v1.4"]["url"] = url_of(host, "cut.bin")  # cut once: the downloader resumes it
    host.sources_path.write_text(json.dumps(host.sources))
    out = env / "out"
    words = readme_argv(out)
    assert words == argv(out)[:-2]  # portrait --reference samples/... --face samples/... --out out/
    questions = []
    monkeypatch.setattr("builtins.input", lambda: questions.append(1) or "y")
    rc = cli(*words)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    err = captured.err
    assert questions == [1]  # one confirmation
    assert "No GPU found" in err and "using fast_swap" in err
    [call] = json.loads((env / "home" / "comfy_cli_calls.json").read_text())
    assert call[:2] == ["--skip-prompt", f"--workspace={env / 'home' / 'ComfyUI'}"]
    assert call[2:] == ["install", "--skip-manager", "--cpu"]
    link = env / "home" / "ComfyUI" / "custom_nodes" / "ip_to_portrait"
    assert link.is_symlink() and link.resolve() == PACK_ROOT
    installed = sorted(p.relative_to(models_dir(env)).as_posix() for p in models_dir(env).rglob("*") if p.is_file())
    assert installed == sorted(manifest.by_id(i).relpath for i in FAST_SWAP_IDS)
    assert (models_dir(env) / "facerestore_models" / "GFPGANv1.4.pth").read_bytes() == DATA
    assert ("/cut.bin", f"bytes={CUT_AT}-") in host.requests  # resumed, not restarted
    [result] = json.loads((out / "summary.json").read_text())
    assert result["status"] == "ok" and len(result["outputs"]) == 1
    saved = Path(result["outputs"][0])
    assert saved.parent == out and Image.open(saved).format == "PNG"
    lines = captured.out.splitlines()
    assert lines[0] == str(saved)  # stdout starts with the result (the installer's output went to stderr)
    assert "  | ComfyUI is installed at:" in err
    assert "identity score" in captured.out and "I2PIdentityScore" in captured.out  # the node's own text
    assert "NON-COMMERCIAL use only: buffalo_l, inswapper_128.onnx" in captured.out
    assert "may NOT be used commercially" in captured.out
    port = int(result["server"].rsplit(":", 1)[1])
    with socket.socket() as s:  # the private server was stopped
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_second_run_reuses_the_private_comfyui_and_its_models(env, host, monkeypatch, capsys):
    assert cli(*argv(env / "out1", "--yes")) == 0
    requests = len(host.requests)
    capsys.readouterr()

    def no_question():
        raise AssertionError("asked although every model is there")

    monkeypatch.setattr("builtins.input", no_question)
    assert cli(*argv(env / "out2")) == 0
    err = capsys.readouterr().err
    assert "ComfyUI: " + str(env / "home" / "ComfyUI") + " (the private ComfyUI)" in err
    assert "all 9 file(s) that fast_swap needs are in" in err
    assert len(json.loads((env / "home" / "comfy_cli_calls.json").read_text())) == 1  # installed once
    assert len(host.requests) == requests  # nothing downloaded again
    assert len(list((env / "out2").glob("*.png"))) == 1


# ------------------------------------------------------------------------------------ failure paths
def test_no_comfyui_and_no_installer_gives_the_manual_steps(env, monkeypatch, capsys):
    monkeypatch.setattr(home_mod, "installer_command", lambda: None)
    rc = cli(*argv(env / "out", "--yes"))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "comfy-cli, is not installed" in err
    assert "pip install 'comfy-cli" in err and "git clone https://github.com/comfyanonymous/ComfyUI" in err
    assert "--comfyui" in err
    assert not (env / "home" / "ComfyUI").exists() and not (env / "out").exists()


def test_installer_that_fails_gives_the_manual_steps(env, monkeypatch, capsys):
    monkeypatch.setenv("I2P_COMFY_CLI_DOUBLE_FAIL", "1")
    rc = cli(*argv(env / "out", "--yes"))
    err = capsys.readouterr().err
    assert rc == 2
    assert "installing ComfyUI with comfy-cli failed (exit code 1)" in err and "git clone" in err


def test_models_missing_and_the_user_says_no(env, host, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", lambda: "n")
    rc = cli(*argv(env / "out"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "fast_swap needs 9 file(s)" in err  # the list, with sizes and licences
    assert "inswapper_128" in err and "300.00 KB" in err and "NON-COMMERCIAL" in err
    assert "Download 9 file(s), 2.70 MB" in err
    assert "nothing was downloaded" in err and "models download buffalo_l-det_10g" in err
    assert host.requests == []
    assert not [p for p in models_dir(env).rglob("*") if p.is_file()]
    assert not (env / "out" / "summary.json").exists()


def test_a_download_that_keeps_being_cut(env, host, capsys):
    host.sources["inswapper_128"]["url"] = url_of(host, "cut-always.bin")
    host.sources_path.write_text(json.dumps(host.sources))
    rc = cli(*argv(env / "out", "--yes"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "1 download(s) failed (inswapper_128)" in err and "resumes where it stopped" in err
    assert f"cut after {CUT_AT} of {len(DATA)} bytes" in err
    final = models_dir(env) / "insightface" / "inswapper_128.onnx"
    assert not final.exists()
    assert final.with_name("inswapper_128.onnx.part").stat().st_size == CUT_AT  # kept for the next run
    assert not (env / "out" / "summary.json").exists()


def test_with_a_gpu_the_default_is_recommended_portrait(env, host, monkeypatch, capsys):
    """recommended_portrait on a GPU machine; its SDXL checkpoint has no direct download, so the command
    fetches the rest and names the one file to place by hand."""
    monkeypatch.setattr(portrait, "detect_gpu", lambda: "nvidia (nvidia-smi)")
    rc = cli(*argv(env / "out", "--yes"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "GPU found (nvidia (nvidia-smi)): using recommended_portrait" in err
    [call] = json.loads((env / "home" / "comfy_cli_calls.json").read_text())
    assert call[-1] == "--nvidia"
    checkpoint = models_dir(env) / "checkpoints" / "RealVisXL_V4.0_inpainting.safetensors"
    assert f"get it from https://civitai.com/models/139562 and save it as {checkpoint}" in err
    assert (models_dir(env) / "loras" / "ip-adapter-faceid-plusv2_sdxl_lora.safetensors").is_file()


def test_a_comfyui_without_the_pack_is_named(env, host, tmp_path, capsys):
    comfy = tmp_path / "theirs" / "ComfyUI"
    sys.path.insert(0, str(TESTS))
    import comfy_cli_double

    assert comfy_cli_double.main([f"--workspace={comfy}", "install"]) == 0
    (comfy / "models").mkdir(exist_ok=True)
    rc = cli(*argv(tmp_path / "out", "--yes", "--comfyui", str(comfy)))
    err = capsys.readouterr().err
    assert rc == 2
    assert "does not have the node(s) I2PDetectFaces" in err and "the pack is not installed in it" in err
    assert not (comfy / "custom_nodes" / "ip_to_portrait").exists()  # someone else's ComfyUI: not touched


# ------------------------------------------------------------------------------------------- pieces
def test_models_come_from_the_workflow_files():
    assert [m.id for m in workflow_models.models_for_prompt(bundled("fast_swap"))] == FAST_SWAP_IDS
    rec = {m.id for m in workflow_models.models_for_prompt(bundled("recommended_portrait"))}
    assert {"faceid-plusv2-sdxl", "faceid-plusv2-sdxl-lora", "clip-vit-h-14", "realvisxl-v4-inpainting",
            "bisenet-face-parsing"} <= rec
    prompt = bundled("recommended_portrait")
    for node in prompt.values():
        if node["class_type"] == "I2PIdentityAdapterLoader":
            node["inputs"]["lora_strength"] = 0.0
        if node["class_type"] == "I2PFaceSwap":
            node["inputs"]["content_safety"] = "off"
            node["inputs"]["swap_model"] = "inswapper_128.fp16.onnx"
    ids = {m.id for m in workflow_models.models_for_prompt(prompt)}
    assert "faceid-plusv2-sdxl-lora" not in ids and "nsfw-vit" not in ids
    assert "inswapper_128-fp16" in ids and "inswapper_128" not in ids


def test_per_user_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("I2P_HOME", raising=False)
    monkeypatch.setattr(home_mod.sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert home_mod.private_comfyui() == tmp_path / "xdg" / "ip_to_portrait" / "ComfyUI"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert home_mod.user_home() == Path.home() / ".local" / "share" / "ip_to_portrait"
    monkeypatch.setenv("I2P_HOME", str(tmp_path / "mine"))
    assert home_mod.user_home() == tmp_path / "mine"


def test_sample_photos_are_small_jpegs_with_their_licence():
    notes = (SAMPLES / "README.md").read_text()
    for name in ("reference.jpg", "face.jpg"):
        path = SAMPLES / name
        assert path.stat().st_size < 200_000
        with Image.open(path) as im:
            assert im.format == "JPEG" and min(im.size) >= 256
        assert f"`{name}`" in notes
    assert notes.count("public domain") >= 2
