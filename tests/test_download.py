"""The model download command against a loopback HTTP server: progress, resume, sha256, and the
promise that nothing partial or unverified ever sits under a model's final name."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

import pytest

from download_server import CUT_AT, DATA, SHA, serving
from packload import pack_module

dl = pack_module("models.download")
manifest = pack_module("models.manifest")
cli_main = pack_module("cli.main")


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    monkeypatch.setattr(dl, "CHUNK", 16 * 1024)  # several progress updates for a 300 kB file


def entry(server, name: str, *, sha: str = SHA, size: int = len(DATA), filename: str = "weights.bin",
          folder: str = "ipadapter", model_id: str = "test-weights") -> "manifest.ModelFile":
    host, port = server.server_address
    return manifest.ModelFile(model_id, folder, filename, size, sha, f"http://{host}:{port}/{name}",
                              "Test licence", "https://example.invalid/licence", True, "tests")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def run(e, root, **kw):
    kw.setdefault("show_progress", False)
    kw.setdefault("log", lambda msg: None)
    return dl.download(e, root, **kw)


# ------------------------------------------------------------------------------------------ success
def test_success_with_progress(server, tmp_path, capsys):
    seen: list[int] = []
    out = run(entry(server, "good.bin"), tmp_path, show_progress=True, progress=seen.append)
    final = tmp_path / "ipadapter" / "weights.bin"
    assert out.status == "downloaded" and out.ok, out.message
    assert final.read_bytes() == DATA
    assert files_under(tmp_path) == [final]  # no .part left over
    assert sum(seen) == len(DATA) and len(seen) > 1
    bar = capsys.readouterr().err
    assert "weights.bin" in bar and "100%" in bar


def test_success_into_nested_folder(server, tmp_path):
    e = entry(server, "good.bin", folder="insightface", filename="models/buffalo_l/det_10g.onnx")
    out = run(e, tmp_path)
    assert out.status == "downloaded"
    assert (tmp_path / "insightface" / "models" / "buffalo_l" / "det_10g.onnx").read_bytes() == DATA


# -------------------------------------------------------------------------------------------- resume
def test_cut_connection_then_resume_with_range(server, tmp_path):
    e = entry(server, "cut.bin")
    final = tmp_path / "ipadapter" / "weights.bin"
    part = final.with_name("weights.bin.part")

    first = run(e, tmp_path)
    assert first.status == "failed"
    assert "cut after 100000 of 300000 bytes" in first.message and "resume" in first.message
    assert not final.exists()
    assert part.stat().st_size == CUT_AT

    second = run(e, tmp_path)
    assert second.status == "downloaded", second.message
    assert server.requests[-1] == ("/cut.bin", f"bytes={CUT_AT}-")
    assert final.read_bytes() == DATA and not part.exists()


def test_retries_resume_within_one_call(server, tmp_path):
    out = run(entry(server, "cut.bin"), tmp_path, retries=2)
    assert out.status == "downloaded", out.message
    assert [r for _, r in server.requests] == [None, f"bytes={CUT_AT}-"]


def test_server_without_range_support_restarts(server, tmp_path):
    final = tmp_path / "ipadapter" / "weights.bin"
    final.parent.mkdir(parents=True)
    final.with_name("weights.bin.part").write_bytes(b"\xff" * 5000)  # junk that must not survive
    logs: list[str] = []
    out = run(entry(server, "norange.bin"), tmp_path, log=logs.append)
    assert out.status == "downloaded", out.message
    assert server.requests[-1] == ("/norange.bin", "bytes=5000-")  # asked to resume...
    assert any("does not support resuming" in m for m in logs)  # ...was refused, and restarted
    assert final.read_bytes() == DATA


def test_complete_part_from_an_interrupted_run_is_verified_without_network(server, tmp_path):
    final = tmp_path / "ipadapter" / "weights.bin"
    final.parent.mkdir(parents=True)
    final.with_name("weights.bin.part").write_bytes(DATA)
    out = run(entry(server, "good.bin"), tmp_path)
    assert out.status == "downloaded" and final.read_bytes() == DATA
    assert server.requests == []


# ---------------------------------------------------------------------------------------- failures
def test_hash_mismatch_installs_nothing(server, tmp_path):
    out = run(entry(server, "wrong.bin"), tmp_path)
    assert out.status == "failed"
    assert "sha256 mismatch" in out.message and SHA in out.message
    assert hashlib.sha256(DATA[::-1]).hexdigest() in out.message
    assert files_under(tmp_path) == []  # neither the final name nor a poisoned .part


def test_http_404_is_clear_and_leaves_nothing(server, tmp_path):
    out = run(entry(server, "missing.bin"), tmp_path)
    assert out.status == "failed"
    assert "HTTP 404" in out.message and "missing.bin" in out.message and "Nothing was installed" in out.message
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_clear(tmp_path):
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    e = manifest.ModelFile("x", "ipadapter", "w.bin", 10, SHA, f"http://127.0.0.1:{port}/w.bin",
                           "L", "https://example.invalid", True, "tests")
    out = run(e, tmp_path)
    assert out.status == "failed" and "could not connect" in out.message
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out_and_keeps_partial(server, tmp_path):
    out = run(entry(server, "stall.bin"), tmp_path, timeout=0.5)
    final = tmp_path / "ipadapter" / "weights.bin"
    assert out.status == "failed"
    assert "stopped sending" in out.message and "resume" in out.message
    assert not final.exists()
    kept = final.with_name("weights.bin.part").read_bytes()
    assert 0 < len(kept) <= CUT_AT and DATA.startswith(kept)  # whole chunks only: a clean prefix to resume


def test_web_page_instead_of_file_is_rejected(server, tmp_path):
    out = run(entry(server, "page.bin"), tmp_path)
    assert out.status == "failed" and "web page" in out.message
    assert files_under(tmp_path) == []


# --------------------------------------------------------------------------------- existing files
def test_existing_good_file_is_skipped(server, tmp_path):
    final = tmp_path / "ipadapter" / "weights.bin"
    final.parent.mkdir(parents=True)
    final.write_bytes(DATA)
    out = run(entry(server, "good.bin"), tmp_path)
    assert out.status == "present" and "sha256 ok" in out.message
    assert server.requests == []


def test_existing_bad_file_is_reported_and_kept(server, tmp_path):
    final = tmp_path / "ipadapter" / "weights.bin"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"user's own file")
    out = run(entry(server, "good.bin"), tmp_path)
    assert out.status == "present-bad" and "--force" in out.message
    assert final.read_bytes() == b"user's own file"
    assert server.requests == []

    forced = run(entry(server, "good.bin"), tmp_path, force=True)
    assert forced.status == "downloaded" and final.read_bytes() == DATA


def test_force_never_swaps_a_bad_file_for_another_bad_one(server, tmp_path):
    final = tmp_path / "ipadapter" / "weights.bin"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"old")
    out = run(entry(server, "wrong.bin"), tmp_path, force=True)
    assert out.status == "failed" and "sha256 mismatch" in out.message
    assert final.read_bytes() == b"old"


def test_alias_location_counts_as_installed(server, tmp_path):
    e = entry(server, "good.bin", folder="loras", filename="lora.safetensors")
    e = dataclasses.replace(e, aliases=("ipadapter/lora.safetensors",))
    (tmp_path / "loras" / "ipadapter").mkdir(parents=True)
    (tmp_path / "loras" / "ipadapter" / "lora.safetensors").write_bytes(DATA)
    assert run(e, tmp_path).status == "present"
    assert dl.check_file(e, tmp_path)[0] == "ok"


# ------------------------------------------------------------------------------------- unverified
def test_entry_without_sha256_is_refused_unless_allowed(server, tmp_path):
    e = entry(server, "good.bin", sha="")
    refused = run(e, tmp_path)
    assert refused.status == "refused" and "--allow-unverified" in refused.message
    assert server.requests == [] and list(tmp_path.iterdir()) == []

    allowed = run(e, tmp_path, allow_unverified=True)
    assert allowed.status == "downloaded" and "WARNING: not verified" in allowed.message
    assert (tmp_path / "ipadapter" / "weights.bin").read_bytes() == DATA


def test_unverified_download_still_checks_the_size(server, tmp_path):
    out = run(entry(server, "good.bin", sha="", size=len(DATA) + 1), tmp_path, allow_unverified=True)
    assert out.status == "failed"
    assert files_under(tmp_path) == []


# ------------------------------------------------------------------------------------ models folder
def test_comfyui_path_resolves_to_its_models_folder(tmp_path):
    checkout = tmp_path / "ComfyUI"
    checkout.mkdir()
    (checkout / "main.py").write_text("")
    assert dl.resolve_models_dir(comfyui=checkout) == checkout / "models"
    portable = tmp_path / "portable"
    (portable / "ComfyUI").mkdir(parents=True)
    (portable / "ComfyUI" / "main.py").write_text("")
    assert dl.comfyui_models_dir(portable) == portable / "ComfyUI" / "models"
    elsewhere = tmp_path / "not-comfy"
    elsewhere.mkdir()
    with pytest.raises(dl.DownloadError, match="does not look like a ComfyUI folder"):
        dl.comfyui_models_dir(elsewhere)
    with pytest.raises(dl.DownloadError, match="not both"):
        dl.resolve_models_dir(models_dir=tmp_path, comfyui=checkout)


def test_default_models_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path))
    assert dl.resolve_models_dir() == tmp_path


# --------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def cli_manifest(server, monkeypatch):
    entries = (
        entry(server, "good.bin", model_id="good", filename="good.bin"),
        entry(server, "missing.bin", model_id="gone", filename="gone.bin"),
        entry(server, "good.bin", model_id="nohash", filename="nohash.bin", sha=""),
    )
    monkeypatch.setattr(manifest, "MODELS", entries)
    return entries


def test_cli_download_list_verify(cli_manifest, tmp_path, capsys):
    root = str(tmp_path / "models")
    assert cli_main.main(["models", "download", "good", "--models-dir", root, "--quiet"]) == 0
    assert "ok: good: installed" in capsys.readouterr().out

    assert cli_main.main(["models", "download", "gone", "nohash", "--models-dir", root, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "--allow-unverified" in err and "2 of 2" in err

    assert cli_main.main(["models", "list", "--models-dir", root]) == 0
    listing = capsys.readouterr().out
    good_row = next(line for line in listing.splitlines() if line.startswith("good "))
    assert "ipadapter/good.bin" in good_row and " yes " in good_row
    assert re.search(r"^gone\s+ipadapter/gone\.bin\s+300\.00 KB\s+no\s", listing, re.M)

    assert cli_main.main(["models", "verify", "good", "--models-dir", root, "--quiet"]) == 0
    assert "OK" in capsys.readouterr().out
    Path(root, "ipadapter", "good.bin").write_bytes(b"tampered")
    assert cli_main.main(["models", "verify", "--all", "--models-dir", root, "--quiet"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_cli_refuses_a_bare_download_and_unknown_ids(cli_manifest, tmp_path, capsys):
    assert cli_main.main(["models", "download", "--models-dir", str(tmp_path)]) == 2
    assert "--all" in capsys.readouterr().err
    assert cli_main.main(["models", "download", "nope", "--models-dir", str(tmp_path)]) == 2
    assert "unknown model id(s): nope" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_group_names_select_every_member():
    models_cmd = pack_module("cli.models_cmd")
    picked = models_cmd.select(["buffalo_l"], False)
    assert [m.group for m in picked] == ["buffalo_l"] * 5
    assert os.path.basename(picked[0].filename) == "det_10g.onnx"


def test_a_different_file_under_an_alias_name_is_left_alone(server, tmp_path):
    # e.g. clip_vision/model.safetensors that is really the bigG encoder, not the ViT-H one we want
    e = dataclasses.replace(entry(server, "good.bin", folder="clip_vision", filename="CLIP-H.safetensors"),
                            aliases=("model.safetensors",))
    other = tmp_path / "clip_vision" / "model.safetensors"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another model")
    logs: list[str] = []
    out = run(e, tmp_path, log=logs.append)
    assert out.status == "downloaded", out.message
    assert other.read_bytes() == b"another model"
    assert (tmp_path / "clip_vision" / "CLIP-H.safetensors").read_bytes() == DATA
    assert any("leaving it alone" in m for m in logs)
