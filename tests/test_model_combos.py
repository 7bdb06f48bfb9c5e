"""Every model-file combo of the pack behaves alike: with no model downloaded it still offers the
manifest's default name (selected by default), so a shared workflow validates before the download,
and running it then fails with a message that names the download command for that file."""
from __future__ import annotations

import json

import pytest

from packload import PACK_ROOT, load_pack, pack_module

manifest = pack_module("models.manifest")
errors = pack_module("core.errors")
model_errors = pack_module("core.model_errors")
API = PACK_ROOT / "workflows" / "api"
NAMES = sorted(p.stem for p in API.glob("*.json"))


#: combos whose default is deliberately no file: an optional model, and the licence table's "all"
DEFAULT_IS_NO_FILE = {("I2PFaceSwap", "resolution_boost"): "none", ("I2PModelLicenses", "model"): "all models"}


def api(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text(encoding="utf-8"))


def manifest_names() -> set[str]:
    names = set()
    for m in manifest.MODELS:
        names |= {m.filename, m.filename.split("/")[-1], m.relpath, *m.aliases}
        if m.group:
            names.add(m.group)
    return names


def combos(node_cls) -> dict[str, tuple[list, dict]]:
    spec = node_cls.INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, value in spec.get(section, {}).items():
            if isinstance(value[0], list):
                out[name] = (value[0], value[1] if len(value) > 1 else {})
    return out


def all_combos() -> dict[tuple[str, str], tuple[list, dict]]:
    return {(ctype, name): c for ctype, cls in load_pack().NODE_CLASS_MAPPINGS.items()
            for name, c in combos(cls).items()}


@pytest.fixture
def full_install(tmp_path, monkeypatch):
    """A models folder holding (empty) files at every manifest path."""
    root = tmp_path / "full"
    for m in manifest.MODELS:
        path = root / m.folder / m.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    monkeypatch.setenv("I2P_MODELS_DIR", str(root))
    return root


@pytest.fixture
def empty_install(tmp_path, monkeypatch):
    root = tmp_path / "empty"
    root.mkdir()
    monkeypatch.setenv("I2P_MODELS_DIR", str(root))
    return root


def model_combos() -> set[tuple[str, str]]:
    """Combos that list model files: those offering a manifest file once every file is installed."""
    known = manifest_names()
    return {key for key, (options, _) in all_combos().items() if set(options) & known}


def test_model_combos_offer_their_default_before_the_download(full_install, monkeypatch, tmp_path):
    found = model_combos()
    # the loaders of every model kind the workflows use are among them (guards the detection itself)
    assert {("I2PIdentityAdapterLoader", "ipadapter_file"), ("I2PFaceSwap", "swap_model"),
            ("I2PFaceRestore", "restore_model"), ("I2PFaceParsingMask", "parsing_model"),
            ("I2PFaceAnalyzerLoader", "pack")} <= found
    empty = tmp_path / "nothing"
    empty.mkdir()
    monkeypatch.setenv("I2P_MODELS_DIR", str(empty))
    now = all_combos()
    known = manifest_names()
    for key in sorted(found):
        options, opts = now[key]
        assert set(options) & known, f"{key}: offers no manifest file when no model is installed: {options}"
        assert opts.get("default") in options, f"{key}: default {opts.get('default')!r} not in {options}"
        if key not in DEFAULT_IS_NO_FILE:
            assert opts["default"] in known, (key, opts["default"])
        else:
            assert opts["default"] == DEFAULT_IS_NO_FILE[key]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_workflows_validate_before_any_download(name, empty_install):
    """Every model name a bundled workflow puts into a pack node's combo is offered by an install that
    has downloaded nothing yet."""
    now = all_combos()
    for nid, node in api(name).items():
        for key, value in node["inputs"].items():
            combo = now.get((node["class_type"], key))
            if combo is not None and not isinstance(value, list):
                assert value in combo[0], f"{name} node {nid} {node['class_type']}.{key}: {value!r} not offered"


def test_missing_adapter_names_its_download_command(empty_install):
    loader = load_pack().NODE_CLASS_MAPPINGS["I2PIdentityAdapterLoader"]()
    with pytest.raises(model_errors.ModelFileMissing) as info:
        loader.load(object(), "ip-adapter-faceid-plusv2_sdxl.bin", 0.6, "auto")
    text = str(info.value)
    assert text.startswith("[I2P Identity Adapter Loader] input 'ipadapter_file'")
    assert "models download faceid-plusv2-sdxl" in text and "models/ipadapter" in text


def test_download_command_is_the_launcher_inside_custom_nodes(monkeypatch, tmp_path):
    """A pack in custom_nodes (any folder name) is told to use its launcher, as typed in the ComfyUI
    folder, with no absolute path of the server; elsewhere the installed module."""
    adapter = pack_module("core.comfy_adapter")
    (tmp_path / "srv" / "ComfyUI" / "custom_nodes").mkdir(parents=True)
    (tmp_path / "srv" / "ComfyUI" / "main.py").write_text("")
    monkeypatch.setattr(adapter, "PACK_DIR", tmp_path / "srv" / "ComfyUI" / "custom_nodes" / "IP-to-Portrait")
    assert model_errors.download_command("inswapper_128") == \
        "python custom_nodes/IP-to-Portrait/i2p.py models download inswapper_128"
    missing = model_errors.ModelFileMissing("I2P Face Swap", "swap_model", "insightface", "inswapper_128.onnx",
                                      "inswapper_128")
    assert "custom_nodes/IP-to-Portrait/i2p.py models download inswapper_128" in str(missing)
    assert str(tmp_path) not in str(missing)
    monkeypatch.setattr(adapter, "PACK_DIR", tmp_path / "home" / "dev" / "ip-to-portrait")
    assert model_errors.download_command("x") == "python -m ip_to_portrait models download x"
