"""Node file names against a real ComfyUI's ``folder_paths`` (tier ``comfyui``): the identities folder is
registered next to what extra_model_paths.yaml configured, Load lists what Save wrote through ComfyUI's
own file list, hostile names and a folder configured inside custom_nodes are refused, and texts show
folder-relative names.

ComfyUI is imported in a subprocess (this file run as a script) so its modules never leak into the rest
of the session; no server starts and no model is built, so it needs no machine-wide lock. Folders are
redirected into a temporary directory: nothing is written into the ComfyUI checkout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui


def test_identity_files_inside_real_comfyui_folders(tmp_path):
    out = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, I2P_QUIET="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads([line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert r["registered"][0] == str(tmp_path / "ids") and r["registered"][-1].endswith("identities")
    assert r["saved"] == ["anna.safetensors", "anna_00001.safetensors"]
    assert r["listed"] == ["anna.safetensors", "anna_00001.safetensors"]
    assert r["loaded"].startswith("anna.safetensors: 1 source image(s)")
    assert r["display_output"] == "output/x.png" and r["display_model"] == "models/identities/anna.safetensors"
    assert r["refused"] == {
        "/etc/passwd": "is an absolute path", "../../user/comfy.settings": "contains '..'",
        "out/anna": "through a symbolic link", "custom": "inside ComfyUI's custom_nodes"}
    assert str(tmp_path) not in json.dumps([r["saved"], r["loaded"], r["refused_messages"], r["damaged"]])
    node = "[I2P Identity Adapter Loader] input 'ipadapter_file': "
    for model_id, shown in (("faceid-plusv2-sdxl", "models/ipadapter/ip-adapter-faceid-plusv2_sdxl.bin"),
                            ("ip-adapter-sdxl-vit-h", "models/ipadapter/ip-adapter_sdxl_vit-h.safetensors"),
                            ("faceid-plusv2-sdxl-lora", "models/loras/ip-adapter-faceid-plusv2_sdxl_lora.safetensors")):
        msg = r["damaged"][model_id]
        assert msg.startswith(f"{node}{shown} is damaged or incomplete"), msg
        assert f"models download {model_id}." in msg and "File path" not in msg and "safetensors file is" not in msg


def _probe(tmp: Path) -> dict:
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # comfy.model_management (the interrupt types) must not look for CUDA
    import folder_paths

    (tmp / "ids").mkdir()
    (tmp / "outside").mkdir()
    (tmp / "ids" / "out").symlink_to(tmp / "outside", target_is_directory=True)
    (tmp / "custom_nodes" / "some_pack").mkdir(parents=True)
    folder_paths.set_output_directory(str(tmp / "output"))
    folder_paths.folder_names_and_paths["custom_nodes"] = ([str(tmp / "custom_nodes")], set())
    folder_paths.add_model_folder_path("identities", str(tmp / "ids"))  # as extra_model_paths.yaml does

    from packload import load_pack, pack_module

    load_pack()  # registers the pack's model folders, as ComfyUI's import does
    nodes = pack_module("nodes.identity")
    paths = pack_module("core.paths")
    errors = pack_module("core.errors")
    enc = pack_module("core.identity.encoding")
    import torch

    ident = enc.Identity(embedding=torch.ones(1, 512) / 512 ** 0.5)
    saver = nodes.I2PSaveIdentity()
    saved = [saver.save(ident, "anna", False)["result"][0] for _ in range(2)]
    listed = nodes.I2PLoadIdentity.INPUT_TYPES()["required"]["identity_file"][0]
    loaded = nodes.I2PLoadIdentity().load("anna.safetensors")["result"][1]
    refused, messages = {}, []
    for name in ("/etc/passwd", "../../user/comfy.settings", "out/anna"):
        try:
            saver.save(ident, name, True)
        except errors.I2PError as exc:
            refused[name] = next(w for w in ("is an absolute path", "contains '..'", "through a symbolic link")
                                 if w in str(exc))
            messages.append(str(exc))
    folder_paths.folder_names_and_paths["identities"][0].insert(0, str(tmp / "custom_nodes" / "some_pack"))
    try:
        saver.save(ident, "anna", True)
    except errors.I2PError as exc:
        refused["custom"] = "inside ComfyUI's custom_nodes" if "custom_nodes" in str(exc) else str(exc)
        messages.append(str(exc))
    return {"registered": [p for p in folder_paths.get_folder_paths("identities") if "some_pack" not in p],
            "saved": saved, "listed": listed, "loaded": loaded, "refused": refused, "refused_messages": messages,
            "display_output": paths.display(tmp / "output" / "x.png"),
            "display_model": paths.display(tmp / "ids" / "anna.safetensors", "identities")}


def _damaged(tmp: Path) -> dict:
    """Damaged weights read through ComfyUI's own comfy.utils.load_torch_file (its error texts differ
    from plain torch/safetensors): still one ModelFileUnreadable naming node, input and file."""
    import folder_paths
    import model_factory
    from packload import pack_module

    model_errors = pack_module("core.model_errors")
    ipa = pack_module("models.ipadapter")
    good = tmp / "good"
    for name in ("ipadapter", "loras"):
        folder_paths.add_model_folder_path(name, str(tmp / "bad" / name), is_default=True)
    out = {}
    for model_id in ("faceid-plusv2-sdxl", "ip-adapter-sdxl-vit-h", "faceid-plusv2-sdxl-lora"):
        src = model_factory.build(model_id, good, "tiny")
        rel = src.relative_to(good)
        dest = tmp / "bad" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 5])
        try:
            if rel.parts[0] == "loras":
                class Model:  # the parts of a ModelPatcher apply_lora reads before ComfyUI's LoRA loader
                    model_options: dict = {}

                    def clone(self):
                        return self

                ipa.apply_lora(Model(), ipa.load_ipadapter(good / "ipadapter" / "ip-adapter-faceid-plusv2_sdxl.bin"), 0.6)
            else:
                ipa.load_ipadapter(dest)
            out[model_id] = "loaded?!"
        except model_errors.ModelFileUnreadable as exc:
            out[model_id] = str(exc)
    return out


if __name__ == "__main__":
    result = _probe(Path(sys.argv[1]))
    result["damaged"] = _damaged(Path(sys.argv[1]))
    print("RESULT " + json.dumps(result))
