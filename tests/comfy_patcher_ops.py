"""What ComfyUI's memory manager does to a model object a custom node hands it, without ComfyUI.

``ModelPatcherImitation`` performs, on the object given to ``comfy.model_patcher.CoreModelPatcher``,
the operations ComfyUI 0.33.0's ``ModelPatcher`` performs on its ``.model`` (comfy/model_patcher.py),
in the order ``load_models_gpu`` -> ``LoadedModel.model_load`` -> ``partially_load`` ->
``unpatch_model`` / ``patch_model`` / ``load`` and, on eviction (``free_memory``,
``unload_all_models``), ``LoadedModel.model_unload`` -> ``detach`` -> ``unpatch_model``:

- ``__init__``: ``hasattr(model, "device")``, reading it, and writing ``device`` when it is absent or
  None; writing ``model_loaded_weight_memory``, ``lowvram_patch_counter``, ``model_lowvram``,
  ``current_weight_patches_uuid``, ``model_offload_buffer_memory`` when absent.
- ``model_size`` (``model_management.module_size``): ``state_dict()`` and each tensor's ``nbytes``;
  ``model_dtype``: ``get_dtype()`` when present.
- ``_load_list``: ``named_modules()``, each module's ``named_parameters(recurse=False/True)``,
  ``module_size`` per leaf module.
- ``load``: per loaded module ``m.comfy_force_cast_weights = ...``, ``get_key_weight`` (attribute
  lookup of every ``<module>.<param>``, ``set_<param>``/``convert_<param>`` probes),
  ``m.comfy_patched_weights = True``, ``m.to(device)``; then ``model.to(device)`` (full load) and
  writes of ``model_lowvram``, ``lowvram_patch_counter`` (+=), ``device``,
  ``model_loaded_weight_memory``, ``model_offload_buffer_memory``, ``current_weight_patches_uuid``.
- ``LoadedModel``: ``weakref.finalize(model, ...)`` (the object must be weak-referenceable),
  ``hasattr(model, "current_patcher")``.
- ``unpatch_model`` (from ``partially_load`` and ``detach``): reading ``model_lowvram``, writing
  ``current_weight_patches_uuid = None``, ``model.to(offload)``, ``model.device = offload``,
  ``model_loaded_weight_memory = 0``, ``model_offload_buffer_memory = 0``, ``modules()`` and
  ``del m.comfy_patched_weights``.

The comfyui test tier runs the real class inside a real server; this list is what CI can run.
"""
from __future__ import annotations

import types
import uuid
import weakref


def module_size(module) -> int:
    return sum(t.nbytes for t in module.state_dict().values())


def _get_attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _key_weight(model, key: str):
    if "." not in key:
        return _get_attr(model, key)
    op_path, name = key.rsplit(".", 1)
    op = _get_attr(model, op_path)
    getattr(op, f"set_{name}", None)
    getattr(op, f"convert_{name}", None)
    return getattr(op, name)


class ModelPatcherImitation:
    """The operations of ComfyUI's ``ModelPatcher`` on ``self.model``, listed in the module docstring."""

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.size = size
        self.patches_uuid = uuid.uuid4()
        if not hasattr(self.model, "device"):
            self.model.device = offload_device
        elif self.model.device is None:
            self.model.device = offload_device
        for name, default in (("model_loaded_weight_memory", 0), ("lowvram_patch_counter", 0),
                              ("model_lowvram", False), ("current_weight_patches_uuid", None),
                              ("model_offload_buffer_memory", 0)):
            if not hasattr(self.model, name):
                setattr(self.model, name, default)
        self.loaded = False

    # -- sizes
    def model_size(self) -> int:
        if self.size <= 0:
            self.size = module_size(self.model)
        return self.size

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()

    def _load_list(self):
        loading = []
        for n, m in self.model.named_modules():
            params = dict(m.named_parameters(recurse=False))
            default = any(name not in params for name, _ in m.named_parameters(recurse=True))
            if not default and (hasattr(m, "comfy_cast_weights") or params):
                loading.append((module_size(m), n, m, params))
        return loading

    # -- ModelPatcher.load (full load: CPU, or a GPU with room)
    def _load(self, device_to):
        mem = 0
        loading = sorted(self._load_list(), key=lambda x: x[0], reverse=True)
        for module_mem, n, m, params in loading:
            m.comfy_force_cast_weights = False
            mem += module_mem
        for module_mem, n, m, params in loading:
            if getattr(m, "comfy_patched_weights", False):
                continue
            for param in params:
                _key_weight(self.model, f"{n}.{param}" if n else param)
            m.comfy_patched_weights = True
        for _, _, m, _ in loading:
            m.to(device_to)
        self.model.model_lowvram = False
        self.model.to(device_to)
        self.model.lowvram_patch_counter += 0
        self.model.device = device_to
        self.model.model_loaded_weight_memory = self.model_size()
        self.model.model_offload_buffer_memory = 0
        self.model.current_weight_patches_uuid = self.patches_uuid

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            if self.model.model_lowvram:
                self.model.model_lowvram = False
                self.model.lowvram_patch_counter = 0
            self.model.current_weight_patches_uuid = None
            if device_to is not None:
                self.model.to(device_to)
                self.model.device = device_to
            self.model.model_loaded_weight_memory = 0
            self.model.model_offload_buffer_memory = 0
            for m in self.model.modules():
                if hasattr(m, "comfy_patched_weights"):
                    del m.comfy_patched_weights

    def partially_load(self, device_to):
        unpatch = (self.model.current_weight_patches_uuid is not None
                   and self.model.current_weight_patches_uuid != self.patches_uuid)
        self.unpatch_model(self.offload_device, unpatch_weights=unpatch)
        if self.model.model_lowvram is False and self.model.model_loaded_weight_memory > 0:
            return
        self._load(device_to)

    def detach(self, unpatch_all=True):
        if unpatch_all:
            self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)
        self.loaded = False
        return self.model

    # -- model_management.load_models_gpu / LoadedModel
    def load_into_memory(self):
        self.model_size()
        self.model_dtype()
        self.partially_load(self.load_device)
        self._finalizer = weakref.finalize(self.model, lambda: None)
        hasattr(self.model, "current_patcher")
        self.loaded = True


def fake_comfy_modules(device) -> tuple[types.ModuleType, types.ModuleType]:
    """(``comfy.model_patcher``, ``comfy.model_management``) stand-ins that drive the imitation the
    way ComfyUI does: ``load_models_gpu`` loads and keeps a list of loaded patchers,
    ``free_memory`` evicts (detaches) them, ``unload_all_models`` is ``free_memory`` of everything."""
    mp = types.ModuleType("comfy.model_patcher")
    mp.CoreModelPatcher = ModelPatcherImitation
    mp.ModelPatcher = ModelPatcherImitation
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: device
    mm.unet_offload_device = lambda: device
    mm.intermediate_device = lambda: device
    mm.throw_exception_if_processing_interrupted = lambda: None

    class InterruptProcessingException(Exception):
        pass

    mm.InterruptProcessingException = InterruptProcessingException
    current: list[ModelPatcherImitation] = []

    def load_models_gpu(models, *args, **kwargs):
        for patcher in models:
            if patcher not in current:
                patcher.load_into_memory()
                current.insert(0, patcher)

    def free_memory(memory_required, device, keep_loaded=(), **kwargs):
        for patcher in [p for p in current if p not in keep_loaded]:
            patcher.detach()
            current.remove(patcher)

    def unload_all_models():
        free_memory(1e30, device)

    mm.load_models_gpu = load_models_gpu
    mm.load_model_gpu = lambda m: load_models_gpu([m])
    mm.free_memory = free_memory
    mm.unload_all_models = unload_all_models
    mm.loaded_models = lambda only_currently_used=False: list(current)
    return mp, mm
