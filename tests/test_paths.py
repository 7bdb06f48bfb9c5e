"""Node inputs that name files stay inside ComfyUI's folders (core/paths.py and its users): hostile names
from an API client are refused with a message naming node, input and fix; good names work; no file is
silently replaced; node texts show folder-relative names, never the server's absolute paths."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from packload import PACK_ROOT, pack_module

paths = pack_module("core.paths")
errors = pack_module("core.errors")
model_errors = pack_module("core.model_errors")
adapter = pack_module("core.comfy_adapter")
enc = pack_module("core.identity.encoding")
nodes = pack_module("nodes.identity")

SAVE, LOAD = "I2P Save Face Identity", "I2P Load Face Identity"


def identity(seed: int = 0):
    e = torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 512)).astype(np.float32))
    return enc.Identity(embedding=e / e.norm(), meta={"clip_input": "none"})


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A private models tree (the pack's fallback outside ComfyUI: $I2P_MODELS_DIR)."""
    root = tmp_path / "comfy" / "models"
    (root / "identities").mkdir(parents=True)
    monkeypatch.setenv("I2P_MODELS_DIR", str(root))
    return root


def refused(exc: pytest.ExceptionInfo, node: str, input_name: str, *words: str) -> str:
    msg = str(exc.value)
    assert msg.startswith(f"[{node}] input '{input_name}'"), msg
    assert "Fix:" in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ------------------------------------------------------------------------------------ the one check
@pytest.mark.parametrize("name,why", [
    ("/etc/passwd", "absolute path"),
    ("\\\\server\\share\\x", "absolute path"),
    ("C:/Windows/win.ini", "absolute path"),
    ("c:evil", "absolute path"),
    ("../secret", "'..'"),
    ("a/../../b", "'..'"),
    ("a\\..\\..\\b", "'..'"),
    ("x\x00y", "NUL"),
    ("", "empty"),
    ("   ", "empty"),
])
def test_plain_name_refuses_what_leaves_a_folder(name, why):
    with pytest.raises(errors.I2PError) as info:
        paths.plain_name(name, "Node X", "name", "models/identities")
    refused(info, "Node X", "name", why, "models/identities")


def test_plain_name_keeps_sub_folders():
    assert paths.plain_name(" family\\anna.safetensors ", "N", "i", "f") == "family/anna.safetensors"
    assert paths.plain_name("./a//b", "N", "i", "f") == "a/b"
    assert paths.plain_name("..anna..", "N", "i", "f") == "..anna.."  # dots inside a name are no climb


def test_inside_follows_symlinks_and_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.safetensors").write_bytes(b"x")
    (root / "link.safetensors").symlink_to(outside / "x.safetensors")
    (root / "dirlink").symlink_to(outside, target_is_directory=True)
    (root / "sub" / "ok.safetensors").write_bytes(b"x")
    (root / "inner.safetensors").symlink_to(root / "sub" / "ok.safetensors")

    assert paths.inside(root, "sub/ok.safetensors", "N", "i", "f") == root / "sub" / "ok.safetensors"
    assert paths.inside(root, "new/file.safetensors", "N", "i", "f") == root / "new" / "file.safetensors"
    assert paths.inside(root, "inner.safetensors", "N", "i", "f") == root / "inner.safetensors"  # link inside
    for name in ("link.safetensors", "dirlink/x.safetensors", "dirlink/new.safetensors"):
        with pytest.raises(errors.I2PError) as info:
            paths.inside(root, name, "N", "i", "models/identities")
        refused(info, "N", "i", "symbolic link", "models/identities")


def test_inside_refuses_custom_nodes(tmp_path, monkeypatch):
    """A folder configured (or linked) into custom_nodes is code, not data: never read or written."""
    custom = tmp_path / "ComfyUI" / "custom_nodes"
    (custom / "other_pack").mkdir(parents=True)
    fp = types.ModuleType("folder_paths")
    fp.get_folder_paths = lambda name: [str(custom)] if name == "custom_nodes" else []
    monkeypatch.setitem(adapter._modules, "folder_paths", fp)
    with pytest.raises(errors.I2PError) as info:
        paths.inside(custom / "other_pack", "__init__.py", "N", "i", "models/identities")
    refused(info, "N", "i", "custom_nodes")
    monkeypatch.delitem(adapter._modules, "folder_paths")
    # the pack itself, even without ComfyUI: a data folder that is (a link into) the pack's code
    (tmp_path / "data").symlink_to(PACK_ROOT / "nodes", target_is_directory=True)
    with pytest.raises(errors.I2PError) as info:
        paths.inside(tmp_path / "data", "identity.py", "N", "i", "f")
    refused(info, "N", "i", "custom_nodes")
    # a link inside a data folder that points into code is an escape like any other
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "pack").symlink_to(PACK_ROOT, target_is_directory=True)
    with pytest.raises(errors.I2PError) as info:
        paths.inside(tmp_path / "root", "pack/nodes/identity.py", "N", "i", "f")
    refused(info, "N", "i", "symbolic link")


def test_publish_never_replaces_without_overwrite(tmp_path):
    dest = tmp_path / "anna.safetensors"
    got = []
    for i in range(3):
        tmp = tmp_path / f".t{i}"
        tmp.write_bytes(b"v%d" % i)
        got.append(paths.publish(tmp, dest, overwrite=False))
    assert [p.name for p in got] == ["anna.safetensors", "anna_00001.safetensors", "anna_00002.safetensors"]
    assert [p.read_bytes() for p in got] == [b"v0", b"v1", b"v2"]
    tmp = tmp_path / ".t9"
    tmp.write_bytes(b"new")
    assert paths.publish(tmp, dest, overwrite=True) == dest and dest.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in got]  # no temp file left


def test_display_shows_folder_relative_names(tmp_path, monkeypatch):
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    assert paths.display(tmp_path / "models" / "insightface" / "x.onnx", "insightface") == "models/insightface/x.onnx"
    assert paths.display(tmp_path / "models" / "ghost" / "g.pth") == "models/ghost/g.pth"
    assert paths.display(tmp_path / "output" / "a" / "b.png") == "output/a/b.png"
    assert paths.display(tmp_path / "input" / "p.png") == "input/p.png"
    assert paths.display("/somewhere/else/secret.bin") == "secret.bin"  # never the absolute path


def test_find_model_refuses_names_that_climb_out(tmp_path, monkeypatch):
    """Model combos: ComfyUI validates them, but a hand-written prompt (or the CLI) reaches find_model."""
    monkeypatch.setenv("I2P_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models" / "insightface").mkdir(parents=True)
    (tmp_path / "secret.onnx").write_bytes(b"x")
    assert adapter.find_model("insightface", "../../secret.onnx") is None
    assert adapter.find_model("insightface", str(tmp_path / "secret.onnx")) is None
    err = model_errors.ModelFileMissing("I2P Face Swap", "swap_model", "insightface", "../../secret.onnx")
    assert str(err).startswith("[I2P Face Swap] input 'swap_model'") and "'..'" in str(err)
    assert "pick a file from the list" in str(err)


# ------------------------------------------------------------------------------- the identity nodes
def test_save_and_load_identity_nodes_good_names(models_dir):
    saver, loader = nodes.I2PSaveIdentity(), nodes.I2PLoadIdentity()
    out = saver.save(identity(0), "family/anna", False)
    assert out["result"] == ("family/anna.safetensors",)
    assert out["ui"]["text"] == ["saved models/identities/family/anna.safetensors"]
    assert (models_dir / "identities" / "family" / "anna.safetensors").is_file()
    # the Load node offers it as a combo entry, like ComfyUI's LoadImage lists input/
    combo = nodes.I2PLoadIdentity.INPUT_TYPES()["required"]["identity_file"][0]
    assert combo == ["family/anna.safetensors"]
    back, text = loader.load("family/anna.safetensors")["result"]
    torch.testing.assert_close(back.embedding, identity(0).embedding)
    assert text.startswith("family/anna.safetensors: 1 source image(s)")
    assert str(models_dir) not in text
    assert isinstance(nodes.I2PLoadIdentity.IS_CHANGED("family/anna.safetensors"), float)


def test_save_never_overwrites_silently(models_dir):
    saver = nodes.I2PSaveIdentity()
    first = saver.save(identity(0), "anna", False)["result"][0]
    second = saver.save(identity(1), "anna.safetensors", False)["result"][0]
    assert (first, second) == ("anna.safetensors", "anna_00001.safetensors")
    folder = models_dir / "identities"
    assert enc.load_identity(folder / first).embedding.equal(identity(0).embedding)  # untouched
    assert saver.save(identity(2), "anna", True)["result"][0] == "anna.safetensors"
    assert enc.load_identity(folder / first).embedding.equal(identity(2).embedding)
    assert sorted(os.listdir(folder)) == ["anna.safetensors", "anna_00001.safetensors"]  # no temp files


@pytest.mark.parametrize("name,why", [
    ("/tmp/evil", "absolute path"),
    ("../../../custom_nodes/evil", "'..'"),
    ("..\\escape", "'..'"),
    ("", "empty"),
])
def test_save_refuses_hostile_names(models_dir, name, why):
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PSaveIdentity().save(identity(), name, True)
    refused(info, SAVE, "name", why, "models/identities")
    assert list((models_dir / "identities").iterdir()) == []


def test_save_refuses_a_symlink_out_and_custom_nodes(models_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (models_dir / "identities" / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PSaveIdentity().save(identity(), "out/anna", True)
    msg = refused(info, SAVE, "name", "symbolic link")
    assert str(tmp_path) not in msg and list(outside.iterdir()) == []
    # models/identities itself linked into custom_nodes (here: into the pack's docs folder)
    (models_dir / "identities" / "out").unlink()
    (models_dir / "identities").rmdir()
    (models_dir / "identities").symlink_to(PACK_ROOT / "docs", target_is_directory=True)
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PSaveIdentity().save(identity(), "evil", True)
    refused(info, SAVE, "name", "custom_nodes")
    assert not (PACK_ROOT / "docs" / "evil.safetensors").exists()


@pytest.mark.parametrize("make,name,why", [
    (None, "/etc/passwd", "absolute path"),
    (None, "../../models/ipadapter/x.safetensors", "'..'"),
    ("link", "link.safetensors", "symbolic link"),
    (None, "missing.safetensors", "is not in models/identities"),
])
def test_load_refuses_hostile_names(models_dir, tmp_path, make, name, why):
    if make == "link":
        secret = tmp_path / "secret.safetensors"
        enc.save_identity(identity(), secret)
        (models_dir / "identities" / "link.safetensors").symlink_to(secret)
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PLoadIdentity().load(name)
    msg = refused(info, LOAD, "identity_file", why)
    assert str(tmp_path) not in msg
    assert nodes.I2PLoadIdentity.IS_CHANGED(name) != nodes.I2PLoadIdentity.IS_CHANGED(name)  # NaN: runs, then errs


def test_load_refuses_a_file_that_is_not_an_identity(models_dir):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(models_dir / "identities" / "other.safetensors"))
    with pytest.raises(errors.I2PError) as info:
        nodes.I2PLoadIdentity().load("other.safetensors")
    refused(info, LOAD, "identity_file", "models/identities/other.safetensors is not an identity file")


def test_identity_folder_is_registered_with_comfyui():
    manifest = pack_module("models.manifest")
    assert manifest.MODEL_FOLDERS["identities"] == {".safetensors"}


def test_no_node_takes_a_free_path_string():
    """Every STRING input of every node: none may name a file or folder except the identity name,
    which goes through core/paths.py (checked above)."""
    pack = sys.modules[pack_module("nodes").__name__]
    allowed = {("I2PSaveIdentity", "name")}
    suspicious = ("path", "file", "folder", "dir", "name")
    found = set()
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, value in spec.get(section, {}).items():
                if value[0] == "STRING" and any(s in input_name.lower() for s in suspicious):
                    found.add((node_id, input_name))
    assert found == allowed


def test_save_refuses_an_empty_identity(models_dir):
    for empty in (None, enc.Identity()):
        with pytest.raises(errors.I2PError) as info:
            nodes.I2PSaveIdentity().save(empty, "anna", False)
        refused(info, SAVE, "identity", "no identity to save")


def test_auto_prompt_key_file_is_shown_folder_relative(tmp_path, monkeypatch):
    ap = pack_module("core.prompt.auto_prompt")
    for var in ap.KEY_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("I2P_USER_DIR", str(tmp_path / "user"))
    key, where = ap.find_api_key()
    assert key is None and "user/__ip_to_portrait/gemini.json does not exist" in where and str(tmp_path) not in where
