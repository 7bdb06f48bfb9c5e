"""Every model object the pack hands to ComfyUI's memory manager survives what the manager does to it.

ComfyUI's ``ModelPatcher`` writes bookkeeping attributes on the object it manages, moves it, reads
its state dict and walks its modules (``comfy_patcher_ops`` lists the operations, read from
comfy/model_patcher.py). A library model may refuse one of them: transformers' ``device`` is a
read-only property, and the content-safety gate crashed inside real ComfyUI with ``property 'device'
of 'ViTForImageClassification' object has no setter``. Here each loader of the pack runs against a
stand-in ComfyUI whose patcher performs those operations; the model is then used, evicted
(``unload_all_models``), loaded again and used again, and must give the same answer.

The same stand-in checks that the pack's resident objects go when ComfyUI unloads every model. The
comfyui tier runs this file again with ComfyUI's own ``ModelPatcher`` and ``model_management``
(``$I2P_REAL_COMFY_PATCHER`` names the checkout).
"""
from __future__ import annotations

import os
import re
import sys
import types

import numpy as np
import pytest

from comfy_patcher_ops import fake_comfy_modules
from packload import PACK_ROOT, pack_module

adapter = pack_module("core.comfy_adapter")
#: set by the comfyui tier (test_comfyui_integration.py): run these tests on ComfyUI's own classes
REAL_COMFY_ENV = "I2P_REAL_COMFY_PATCHER"


def _real_comfy_modules(comfy_path: str):
    """ComfyUI's real ``model_patcher`` (a recording subclass) and ``model_management``."""
    if comfy_path not in sys.path:
        sys.path.insert(0, comfy_path)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # as the tier's server runs (main.py --cpu)
    import comfy.model_management as mm
    import comfy.model_patcher as real

    mp = types.ModuleType("comfy.model_patcher")
    mp.CoreModelPatcher = mp.ModelPatcher = real.ModelPatcher
    return mp, mm


@pytest.fixture
def comfy(monkeypatch):
    """The adapter sees a ComfyUI (the imitation, or ComfyUI's own classes in the comfyui tier);
    ``comfy.patchers`` lists every patcher the pack created; restored afterwards."""
    import torch

    real_path = os.environ.get(REAL_COMFY_ENV)
    mp, mm = _real_comfy_modules(real_path) if real_path else fake_comfy_modules(torch.device("cpu"))
    patchers = []
    base = mp.CoreModelPatcher

    class Recording(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            patchers.append(self)

    mp.CoreModelPatcher = Recording
    saved = dict(adapter._modules)
    adapter._modules.clear()
    adapter._modules.update({"comfyui": True, "folder_paths": None, "comfy.model_patcher": mp,
                             "comfy.model_management": mm, "comfy.utils": None, "server": None,
                             "latent_preview": None})
    adapter.release_resident()  # nothing cached from a test that ran without this ComfyUI
    yield types.SimpleNamespace(mm=mm, patchers=patchers)
    mm.unload_all_models()
    adapter.release_resident()
    adapter._modules.clear()
    adapter._modules.update(saved)


def _rgb(size, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def _classifier(test_models):
    test_models.get("nsfw-vit")
    test_models.get("nsfw-vit-config")
    gate = pack_module("core.post.nsfw_gate")
    img = _rgb(64)
    return lambda: gate.load_classifier("I2P Face Swap").probability(img)


def _restorer(test_models):
    restore = pack_module("core.post.restore")
    path = test_models.get("gfpgan-v1.4")
    crop = _rgb(512, 1)
    return lambda: restore.load_restorer(path, precision="fp32").restore_crop(crop)


def _ghost(test_models):
    ghost = pack_module("core.post.ghost")
    gen, arc = test_models.get("ghost-unet-2blocks"), test_models.get("ghost-arcface")
    types = pack_module("core.faces.types")
    face = types.Face(bbox=np.array([60, 60, 200, 200], np.float32), det_score=0.9,
                      kps=np.array([[100, 110], [160, 110], [130, 140], [105, 170], [155, 170]], np.float32))
    img, crop = _rgb(256, 2), _rgb(256, 3)

    def run():
        swapper = ghost.load_ghost(gen, arc)
        return swapper.swap(crop, swapper.source_identity(img, face))

    return run


def _parser(test_models):
    parsing = pack_module("core.faces.parsing")
    path = test_models.get("bisenet-face-parsing")
    crop = _rgb(512, 4)
    return lambda: parsing.load_parser(path)._run(crop)


#: every module that builds a ManagedModel, and how this test drives it through the pack's own code
USERS = {
    "core/post/nsfw_gate.py": _classifier,
    "core/post/restore.py": _restorer,
    "core/post/ghost.py": _ghost,
    "models/bisenet.py": _parser,
}


def test_every_managed_model_user_is_covered():
    """A new ``ManagedModel(...)`` somewhere in the pack must join :data:`USERS`."""
    found = set()
    for path in PACK_ROOT.rglob("*.py"):
        rel = path.relative_to(PACK_ROOT).as_posix()
        if rel.startswith(("tests/", ".venv/", "bench/")) or rel == "core/comfy_adapter.py":
            continue
        if re.search(r"ManagedModel\(", path.read_text(encoding="utf-8")):
            found.add(rel)
    assert found == set(USERS), f"ManagedModel users not driven by this test: {sorted(found - set(USERS))}"


@pytest.mark.parametrize("user", sorted(USERS))
def test_model_survives_comfyui_model_patcher(user, test_models, comfy):
    run = USERS[user](test_models)
    first = run()
    mm = comfy.mm
    assert comfy.patchers and all(p in mm.loaded_models() for p in comfy.patchers), \
        "the model was used without load_models_gpu"
    for p in comfy.patchers:
        assert p.model.device == p.load_device and p.model.model_loaded_weight_memory == p.model_size() > 0
    mm.free_memory(1e30, mm.get_torch_device())  # eviction under memory pressure: detach, to offload device
    assert not any(p in mm.loaded_models() for p in comfy.patchers)
    again = run()  # the same objects, loaded again
    assert all(p in mm.loaded_models() for p in comfy.patchers)
    np.testing.assert_allclose(np.asarray(again, np.float64), np.asarray(first, np.float64), atol=1e-6)


def test_resident_objects_go_when_comfyui_unloads_every_model(test_models, comfy):
    restore = pack_module("core.post.restore")
    gate = pack_module("core.post.nsfw_gate")
    _restorer(test_models)()
    _classifier(test_models)()
    assert restore._cache and gate._cache
    held = next(iter(restore._cache.values()))
    comfy.mm.unload_all_models()  # what POST /free {"unload_models": true} runs
    assert not restore._cache and not gate._cache
    assert not hasattr(comfy.mm.unload_all_models.__wrapped__, "__wrapped__")  # wrapped once, not per cache
    assert restore.load_restorer(held.path, precision="fp32") is not held  # loaded afresh


def test_projection_is_dropped_when_comfyui_unloads_every_model(comfy):
    ipa = pack_module("models.ipadapter")

    class Holder:
        _projection = object()

    h = Holder()
    ipa._projected[id(h)] = h
    adapter._hook_unload_all()  # inside ComfyUI, importing models/ipadapter.py installed it
    comfy.mm.unload_all_models()
    assert h._projection is None and not ipa._projected
