"""core/comfy_adapter.py: folder registration inside ComfyUI (with a fake ``folder_paths``) and every
fallback outside ComfyUI."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from packload import pack_module


@pytest.fixture
def adapter(monkeypatch):
    """The adapter with an empty module cache, restored afterwards (it caches what it found)."""
    mod = pack_module("core.comfy_adapter")
    for name in ("folder_paths", "server", "comfy", "comfy.utils", "comfy.model_management", "latent_preview"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    mod._modules.clear()
    yield mod
    mod._modules.clear()


def fake_folder_paths(models_dir: Path) -> types.ModuleType:
    """The parts of ComfyUI's folder_paths the adapter uses, with ComfyUI's semantics: an empty
    extension set lists every file, extra_model_paths.yaml appends paths via add_model_folder_path."""
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(models_dir)
    fp.supported_pt_extensions = {".ckpt", ".pt", ".bin", ".pth", ".safetensors"}
    fp.folder_names_and_paths = {
        "checkpoints": ([str(models_dir / "checkpoints")], set(fp.supported_pt_extensions)),
        "configs": ([str(models_dir / "configs")], [".yaml"]),
    }

    def add_model_folder_path(name, path, is_default=False):
        if name in fp.folder_names_and_paths:
            paths = fp.folder_names_and_paths[name][0]
            if path not in paths:
                paths.insert(0, path) if is_default else paths.append(path)
        else:
            fp.folder_names_and_paths[name] = ([path], set())

    def get_filename_list(name):
        paths, exts = fp.folder_names_and_paths[name]
        out = []
        for root in paths:
            for p in Path(root).rglob("*"):
                if p.is_file() and (not exts or p.suffix.lower() in exts):
                    out.append(p.relative_to(root).as_posix())
        return sorted(out)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_filename_list = get_filename_list
    return fp


# ============================================================================ inside ComfyUI (fake)
def test_register_keeps_extra_model_paths_and_their_extensions(adapter, monkeypatch, tmp_path):
    fp = fake_folder_paths(tmp_path / "models")
    # extra_model_paths.yaml ran first (ComfyUI loads it before custom nodes):
    fp.add_model_folder_path("ipadapter", str(tmp_path / "shared" / "ipadapter"))
    fp.add_model_folder_path("insightface", str(tmp_path / "shared" / "insightface"))
    # ... and ReActor registered facerestore_models with its own (narrower) extensions
    fp.folder_names_and_paths["facerestore_models"] = ([str(tmp_path / "reactor")], {".pth"})
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    manifest = pack_module("models.manifest")

    adapter.register_model_folders(manifest.MODEL_FOLDERS)
    adapter.register_model_folders(manifest.MODEL_FOLDERS)  # idempotent: a reload must not duplicate

    default = lambda name: str(tmp_path / "models" / name)  # noqa: E731
    ipa_paths, ipa_exts = fp.folder_names_and_paths["ipadapter"]
    assert ipa_paths == [str(tmp_path / "shared" / "ipadapter"), default("ipadapter")]
    assert ipa_exts == set()  # yaml-added = every file: not narrowed to ours
    ins_paths, _ = fp.folder_names_and_paths["insightface"]
    assert ins_paths == [str(tmp_path / "shared" / "insightface"), default("insightface")]
    fr_paths, fr_exts = fp.folder_names_and_paths["facerestore_models"]
    assert fr_paths == [str(tmp_path / "reactor"), default("facerestore_models")]
    assert fr_exts == {".pth"} | manifest.MODEL_FOLDERS["facerestore_models"] and ".onnx" in fr_exts
    ghost_paths, ghost_exts = fp.folder_names_and_paths["ghost"]  # new: ours alone
    assert ghost_paths == [default("ghost")] and ghost_exts == manifest.MODEL_FOLDERS["ghost"]
    assert fp.folder_names_and_paths["checkpoints"][0] == [default("checkpoints")]  # core untouched
    for name in manifest.MODEL_FOLDERS:
        assert name in fp.folder_names_and_paths


def test_default_path_already_first_is_not_repeated(adapter, monkeypatch, tmp_path):
    fp = fake_folder_paths(tmp_path / "models")
    fp.add_model_folder_path("ipadapter", str(tmp_path / "models" / "ipadapter"), is_default=True)
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    adapter.register_model_folders({"ipadapter": {".bin"}})
    assert fp.folder_names_and_paths["ipadapter"][0] == [str(tmp_path / "models" / "ipadapter")]


def test_lookups_use_every_registered_path(adapter, monkeypatch, tmp_path):
    fp = fake_folder_paths(tmp_path / "models")
    fp.add_model_folder_path("insightface", str(tmp_path / "shared"))
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    adapter.register_model_folders({"insightface": {".onnx"}})
    (tmp_path / "shared" / "models" / "buffalo_l").mkdir(parents=True)
    (tmp_path / "shared" / "models" / "buffalo_l" / "det_10g.onnx").write_bytes(b"x")
    (tmp_path / "models" / "insightface").mkdir(parents=True)
    (tmp_path / "models" / "insightface" / "inswapper_128.onnx").write_bytes(b"x")

    assert adapter.models_dir() == tmp_path / "models"
    assert adapter.folder_dirs("insightface") == [tmp_path / "shared", tmp_path / "models" / "insightface"]
    assert adapter.find_model("insightface", "models/buffalo_l") == tmp_path / "shared" / "models" / "buffalo_l"
    assert adapter.find_model("insightface", "inswapper_128.onnx") == tmp_path / "models" / "insightface" / "inswapper_128.onnx"
    assert adapter.list_models("insightface") == ["inswapper_128.onnx", "models/buffalo_l/det_10g.onnx"]


def test_folder_paths_alone_is_not_comfyui(adapter, monkeypatch, tmp_path):
    """A stray ``server`` module (or folder_paths without ``comfy``) must not switch the fallbacks off."""
    monkeypatch.setitem(sys.modules, "folder_paths", fake_folder_paths(tmp_path))
    monkeypatch.setitem(sys.modules, "server", types.ModuleType("server"))
    if importlib.util.find_spec("comfy") is not None:
        pytest.skip("a real 'comfy' package is importable here")
    assert adapter.in_comfyui() is False
    assert adapter.comfy_module("server") is None
    assert adapter.comfy_module("comfy.utils") is None


# ==================================================================================== outside ComfyUI
def test_outside_comfyui_register_is_a_no_op(adapter):
    assert adapter.comfy_module("folder_paths") is None
    adapter.register_model_folders({"ipadapter": {".bin"}})  # nothing to register with, no error
    assert "folder_paths" not in sys.modules


def test_models_dir_fallbacks(adapter, monkeypatch, tmp_path):
    monkeypatch.setenv(adapter.MODELS_DIR_ENV, str(tmp_path / "env_models"))
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path / "comfy"))
    assert adapter.models_dir() == tmp_path / "env_models"
    monkeypatch.delenv(adapter.MODELS_DIR_ENV)
    assert adapter.models_dir() == tmp_path / "comfy" / "models"
    monkeypatch.delenv("COMFYUI_PATH")
    monkeypatch.chdir(tmp_path)
    assert adapter.models_dir() == tmp_path / "models"


def test_find_and_list_models_from_the_env_directory(adapter, monkeypatch, tmp_path):
    monkeypatch.setenv(adapter.MODELS_DIR_ENV, str(tmp_path))
    pack = tmp_path / "insightface" / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx", "README.txt"):
        (pack / name).write_bytes(b"x")
    (tmp_path / "insightface" / "inswapper_128.ONNX").write_bytes(b"x")

    assert adapter.find_model("insightface", "models/buffalo_l") == pack
    assert adapter.find_model("insightface", "models/buffalo_l/det_10g.onnx") == pack / "det_10g.onnx"
    assert adapter.find_model("insightface", "missing.onnx") is None
    assert adapter.find_model("ipadapter", "x.bin") is None  # folder absent altogether
    assert adapter.list_models("insightface", [".onnx"]) == [
        "inswapper_128.ONNX", "models/buffalo_l/det_10g.onnx", "models/buffalo_l/w600k_r50.onnx"]
    assert "models/buffalo_l/README.txt" in adapter.list_models("insightface")
    assert adapter.list_models("ipadapter") == []


def test_progress_without_comfyui(adapter, monkeypatch, capsys):
    monkeypatch.setenv("I2P_QUIET", "1")
    with adapter.Progress(3) as p:
        assert p._bar is None and p._tqdm is None
        p.update()
        p.update(1, preview=object())  # previews are dropped outside ComfyUI
        p.update(5)
        assert p.value == 3  # clamped to total
    monkeypatch.setenv("I2P_QUIET", "0")
    with adapter.Progress(2, desc="i2p-progress-test") as p:
        assert p._tqdm is not None
        p.update(2)
    assert p._tqdm is None  # closed on exit
    assert "i2p-progress-test" in capsys.readouterr().err
    assert adapter.Progress(0).total == 1  # never a zero-length bar


def test_interrupt_and_events_are_no_ops_outside(adapter):
    assert adapter.check_interrupt() is None
    assert adapter.interrupt_exception_types() == (KeyboardInterrupt,)
    assert adapter.send_event("i2p.test", {"x": 1}) is None
    assert adapter.sampler_callback(object(), 4) is None


def test_devices_and_managed_model_outside(adapter):
    import torch

    assert adapter.offload_device() == torch.device("cpu")
    assert adapter.intermediate_device() == torch.device("cpu")
    assert adapter.torch_device().type in ("cpu", "cuda", "mps")
    lin = torch.nn.Linear(2, 2)
    mm = adapter.ManagedModel(lin, load_device=torch.device("cpu"))
    assert mm.patcher is None and mm.load() is lin


def test_load_torch_file_safetensors_and_pth(adapter, tmp_path):
    import torch
    from safetensors.torch import save_file

    sd = {"a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    save_file(sd, str(tmp_path / "m.safetensors"))
    torch.save(sd, tmp_path / "m.pth")
    for name in ("m.safetensors", "m.pth"):
        got = adapter.load_torch_file(tmp_path / name)
        assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd), name
    # weights only: a pickle that would run code is refused by default
    torch.save({"obj": _Pickled()}, tmp_path / "obj.pth")
    with pytest.raises(Exception, match="(?i)weights.only|unpickl|global"):
        adapter.load_torch_file(tmp_path / "obj.pth")
    assert "obj" in adapter.load_torch_file(tmp_path / "obj.pth", safe_load=False)


class _Pickled:
    """An arbitrary class instance: torch.load(weights_only=True) must refuse it."""
