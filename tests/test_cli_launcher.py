"""The README's CLI command for a pack cloned into ``ComfyUI/custom_nodes`` (no ``pip install -e``):
``python <ComfyUI>/custom_nodes/<pack>/i2p.py ...`` works from any working directory, whatever the
pack's folder is called, and defaults to the models folder of the ComfyUI the pack sits in.

The pack is found through the launcher only: each run is a fresh interpreter started in an unrelated
folder, with a link to this working tree as ``custom_nodes/<name>``. The venv's editable install of
``ip_to_portrait`` (if any) points elsewhere; the launcher must load the folder it sits in, which the
``models folder:`` line proves (only this tree's code knows the ComfyUI above the pack).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from packload import PACK_ROOT


def fake_comfyui(base: Path, pack_name: str) -> tuple[Path, Path]:
    """``base/ComfyUI`` with main.py, models/ and the pack linked in as ``custom_nodes/<pack_name>``."""
    home = base / "ComfyUI"
    (home / "models").mkdir(parents=True)
    (home / "custom_nodes").mkdir()
    (home / "main.py").write_text("# not started by these tests\n")
    pack = home / "custom_nodes" / pack_name
    pack.symlink_to(PACK_ROOT, target_is_directory=True)
    return home, pack


def launch(pack: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("COMFYUI_PATH", "I2P_MODELS_DIR", "I2P_USER_DIR", "PYTHONPATH")}
    return subprocess.run([sys.executable, str(pack / "i2p.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("pack_name", ["ip_to_portrait", "IP-to-Portrait"])
def test_models_list_from_any_folder(tmp_path, pack_name):
    home, pack = fake_comfyui(tmp_path, pack_name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = launch(pack, elsewhere, "models", "list")
    assert out.returncode == 0, out.stderr
    assert f"models folder: {home / 'models'}\n" in out.stdout
    assert "faceid-plusv2-sdxl" in out.stdout and "inswapper_128" in out.stdout
    assert not (elsewhere / "models").exists()


def test_help_names_the_launcher(tmp_path):
    _, pack = fake_comfyui(tmp_path, "IP-to-Portrait")
    out = launch(pack, tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: python {pack / 'i2p.py'}" in out.stdout
    for command in ("models", "run"):
        assert command in out.stdout


def test_run_hint_names_the_comfyui_it_sits_in(tmp_path):
    """No server answers: the hint gives the ``--comfyui`` path that would start one."""
    home, pack = fake_comfyui(tmp_path, "ip_to_portrait")
    out = launch(pack, tmp_path, "run", "--workflow", "fast_swap", "--reference", "r.jpg", "--face", "f.jpg",
                 "--out", str(tmp_path / "out"), "--server", "http://127.0.0.1:9")
    assert out.returncode == 2
    assert f"pass --comfyui {home} to start a private one" in out.stderr


def test_pack_subfolders_do_not_shadow_top_level_modules(tmp_path):
    """Python puts the script's folder first on sys.path; the launcher takes it off again, so the pack's
    ``models``/``core``/``nodes``/``cli`` folders cannot shadow libraries of those names."""
    _, pack = fake_comfyui(tmp_path, "ip_to_portrait")
    code = ("import os, runpy, sys\n"
            "script = sys.argv[1]\n"
            "sys.path.insert(0, os.path.dirname(script))  # what `python script` does\n"
            "sys.argv = [script, '--help']\n"
            "try:\n    runpy.run_path(script, run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print('LEFT', [p for p in sys.path if os.path.realpath(p or '.') == {str(PACK_ROOT)!r}])")
    out = subprocess.run([sys.executable, "-c", code, str(pack / "i2p.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LEFT []"
