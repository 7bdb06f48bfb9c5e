"""The one door between the pack and ComfyUI.

Every import of ``comfy``, ``folder_paths``, ``server``, ``latent_preview`` (and any other ComfyUI
module) goes through :func:`comfy_module`, so the whole pack imports, and its stage logic runs, where
ComfyUI is absent. Each helper has a plain fallback: a models directory from an environment
variable, plain torch device choice, a console progress bar, no interrupt.

Nothing here imports torch at module level: importing the pack must stay cheap.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

_MISSING = object()
_modules: dict[str, Any] = {}

#: Environment variable naming a models directory (laid out like ComfyUI's ``models/``) outside ComfyUI.
MODELS_DIR_ENV = "I2P_MODELS_DIR"


def comfy_module(name: str) -> ModuleType | None:
    """Import a ComfyUI module by name, or None where ComfyUI is absent.

    A module that *is* present but fails to import raises: that is a broken ComfyUI, not an absent one,
    and hiding it would turn a clear error into silent fallbacks.
    """
    cached = _modules.get(name, _MISSING)
    if cached is not _MISSING:
        return cached
    module: ModuleType | None
    if name != "folder_paths" and not in_comfyui():
        module = None  # an unrelated top-level ``server`` or ``comfy`` package is not ComfyUI
    elif name in sys.modules:
        module = sys.modules[name]
    else:
        top = name.split(".")[0]
        if importlib.util.find_spec(top) is None:
            module = None
        else:
            module = importlib.import_module(name)
    _modules[name] = module
    return module


def in_comfyui() -> bool:
    """True when running inside a ComfyUI process (its ``folder_paths`` and model management load)."""
    if "comfyui" not in _modules:
        _modules["comfyui"] = (
            comfy_module("folder_paths") is not None and importlib.util.find_spec("comfy") is not None
        )
    return _modules["comfyui"]


# --------------------------------------------------------------------------------------------- models
def register_model_folders(folders: Mapping[str, Iterable[str]]) -> None:
    """Register the pack's model folders with ComfyUI, keeping what the user already configured.

    ``extra_model_paths.yaml`` (and other packs such as IPAdapter_plus or ReActor) may have registered
    the same folder name before us: their paths stay first and their extensions are kept, ours are
    added. An empty extension set means "every file" in ComfyUI, which we preserve.
    """
    fp = comfy_module("folder_paths")
    if fp is None:
        return
    for name, exts in folders.items():
        default = os.path.join(fp.models_dir, name)
        ext_set = set(exts)
        if name in fp.folder_names_and_paths:
            paths, old_exts = fp.folder_names_and_paths[name]
            paths = list(paths)
            if default not in paths:
                paths.append(default)
            merged = set(old_exts)
            if merged:  # empty = "all files": do not narrow it
                merged |= ext_set
            fp.folder_names_and_paths[name] = (paths, merged)
        else:
            fp.folder_names_and_paths[name] = ([default], ext_set)


#: The pack's folder as Python imported it: abspath, not resolve(), so a pack symlinked into
#: ``custom_nodes`` belongs to the ComfyUI it is linked into.
PACK_DIR = Path(os.path.abspath(__file__)).parent.parent


def enclosing_comfyui() -> Path | None:
    """The ComfyUI folder whose ``custom_nodes`` holds this pack (the README's install), else None."""
    home = PACK_DIR.parent.parent
    if PACK_DIR.parent.name == "custom_nodes" and ((home / "main.py").is_file() or (home / "models").is_dir()):
        return home
    return None


def comfyui_home() -> Path | None:
    """The ComfyUI install seen from outside its process (the CLI): ``$COMFYUI_PATH``, else the one
    this pack sits in, else None. The second makes the CLI find the right ``models/`` from any working
    directory, for a pack installed the way the README says."""
    comfy_path = os.environ.get("COMFYUI_PATH")
    return Path(comfy_path) if comfy_path else enclosing_comfyui()


def models_dir() -> Path:
    """Root of a ComfyUI-style ``models/`` tree: ComfyUI's own, else ``$I2P_MODELS_DIR``,
    else ``models/`` of :func:`comfyui_home`, else ``./models``."""
    fp = comfy_module("folder_paths")
    if fp is not None:
        return Path(fp.models_dir)
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    home = comfyui_home()
    return home / "models" if home else Path.cwd() / "models"


def user_dir() -> Path:
    """ComfyUI's user directory (settings, private pack files such as API keys): ComfyUI's own, else
    ``$I2P_USER_DIR``, else ``user/`` of :func:`comfyui_home`, else ``./user``."""
    fp = comfy_module("folder_paths")
    if fp is not None and hasattr(fp, "get_user_directory"):
        return Path(fp.get_user_directory())
    env = os.environ.get("I2P_USER_DIR")
    if env:
        return Path(env)
    home = comfyui_home()
    return home / "user" if home else Path.cwd() / "user"


def output_dir() -> Path:
    """ComfyUI's output directory: ComfyUI's own, else ``$COMFYUI_PATH/output``, else ``./output``."""
    return _comfy_dir("get_output_directory", "output")


def input_dir() -> Path:
    """ComfyUI's input directory: ComfyUI's own, else ``$COMFYUI_PATH/input``, else ``./input``."""
    return _comfy_dir("get_input_directory", "input")


def _comfy_dir(getter: str, name: str) -> Path:
    fp = comfy_module("folder_paths")
    if fp is not None and hasattr(fp, getter):
        return Path(getattr(fp, getter)())
    comfy_path = os.environ.get("COMFYUI_PATH")
    return Path(comfy_path) / name if comfy_path else Path.cwd() / name


def folder_dirs(folder: str) -> list[Path]:
    """Every directory searched for ``folder`` (ComfyUI may have several per name)."""
    fp = comfy_module("folder_paths")
    if fp is not None and folder in fp.folder_names_and_paths:
        return [Path(p) for p in fp.folder_names_and_paths[folder][0]]
    return [models_dir() / folder]


def list_models(folder: str, extensions: Iterable[str] | None = None) -> list[str]:
    """File names (relative to the folder, forward slashes) a combo widget can offer."""
    fp = comfy_module("folder_paths")
    if fp is not None and folder in fp.folder_names_and_paths:
        names = list(fp.get_filename_list(folder))
    else:
        names = []
        for root in folder_dirs(folder):
            if root.is_dir():
                names += [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    if extensions is not None:
        exts = tuple(e.lower() for e in extensions)
        names = [n for n in names if n.lower().endswith(exts)]
    return sorted(set(names))


def find_model(folder: str, name: str) -> Path | None:
    """Full path of ``name`` (a file or a directory such as a buffalo_l pack) inside ``folder``; None
    also for a name that could leave the folder (absolute, ``..``: see core/paths.py)."""
    from .names import name_problem

    if name_problem(name):
        return None
    for root in folder_dirs(folder):
        candidate = root / name
        if candidate.exists():
            return candidate
    return None


# ------------------------------------------------------------------------------------------- devices
def torch_device():
    """The device models run on: ComfyUI's choice, else CUDA/MPS when present, else CPU."""
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device():
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        return mm.unet_offload_device()
    import torch

    return torch.device("cpu")


def intermediate_device():
    """Where IMAGE/MASK tensors handed between nodes live (CPU in ComfyUI)."""
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        return mm.intermediate_device()
    import torch

    return torch.device("cpu")


def load_torch_file(path: str | os.PathLike, safe_load: bool = True) -> dict:
    """A state dict from ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` (weights only by default)."""
    cu = comfy_module("comfy.utils")
    if cu is not None:
        return cu.load_torch_file(str(path), safe_load=safe_load)
    path = str(path)
    if path.lower().endswith((".safetensors", ".sft")):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    import torch

    return torch.load(path, map_location="cpu", weights_only=safe_load)


def _holder_class():
    """``ModelHolder``, built on first use so importing the adapter never imports torch."""
    global _Holder
    if _Holder is None:
        import torch

        class ModelHolder(torch.nn.Module):
            """A plain ``nn.Module`` owning a library model, for ComfyUI's model patcher, which writes
            bookkeeping attributes (``device``, ``model_lowvram``, ``current_weight_patches_uuid``...)
            on what it manages. Library classes may refuse them: transformers' ``device`` is a
            read-only property (the safety gate crashed in ``load_models_gpu``). The writes land on
            the holder; the weights are its submodule's, so moving the holder moves them."""

            def __init__(self, module):
                super().__init__()
                self.held = module

            def forward(self, *args, **kwargs):
                return self.held(*args, **kwargs)

        _Holder = ModelHolder
    return _Holder


_Holder = None


class ManagedModel:
    """A torch module that ComfyUI may move and evict; outside ComfyUI it just lives on one device.

    ComfyUI's patcher gets a :func:`_holder_class` holder that owns ``module``, never ``module``
    itself; :meth:`load` returns the library module, on its load device.
    """

    def __init__(self, module, load_device=None, offload=None):
        self.module = module
        self.holder = _holder_class()(module)
        self.load_device = load_device if load_device is not None else torch_device()
        self.offload_device = offload if offload is not None else offload_device()
        mp = comfy_module("comfy.model_patcher")
        _hook_unload_all()
        self.patcher = (
            mp.CoreModelPatcher(self.holder, load_device=self.load_device, offload_device=self.offload_device)
            if mp is not None
            else None
        )

    def load(self):
        """Make sure the module sits on its load device and return it."""
        mm = comfy_module("comfy.model_management")
        if self.patcher is not None and mm is not None:
            mm.load_models_gpu([self.patcher])
        else:
            self.module.to(self.load_device)
        return self.module


# ------------------------------------------------------------------------------ releasing memory
_release_callbacks: list[Callable[[], int]] = []
_resident: list["ResidentCache"] = []


class ResidentCache(dict):
    """A dict of loaded models (ONNX sessions, analyzers, restorers...) kept between runs, emptied
    when ComfyUI unloads every model (``POST /free`` with ``unload_models``, an out-of-memory error,
    ``--disable-smart-memory``): the objects then go with the last reference to them."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what
        _resident.append(self)

    def __setitem__(self, key, value) -> None:
        _hook_unload_all()
        super().__setitem__(key, value)


def on_unload_all(release: Callable[[], int]) -> None:
    """Call ``release()`` (returning how many objects it let go) when ComfyUI unloads every model."""
    _release_callbacks.append(release)
    _hook_unload_all()


def release_resident() -> int:
    """Empty every :class:`ResidentCache` and run the registered releases; returns the object count."""
    count = 0
    for cache in _resident:
        count += len(cache)
        cache.clear()
    for release in list(_release_callbacks):
        count += int(release() or 0)
    return count


def _trim_heap() -> None:
    """Give freed heap back to the system (glibc ``malloc_trim``). Most weight tensors are smaller than
    glibc's mmap threshold and live on the heap, where free() keeps them in the process: without a
    trim, released models leave the server's RSS where it was."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to trim with
        pass


def _hook_unload_all() -> None:
    """Wrap ``comfy.model_management.unload_all_models`` once so the pack's own resident objects go
    with ComfyUI's models. ComfyUI has no event for this: its main loop (``POST /free``), the OOM
    handler and ``--disable-smart-memory`` all call that one function through the module."""
    mm = comfy_module("comfy.model_management")
    if mm is None or getattr(mm.unload_all_models, "i2p_releases", False):
        return
    original = mm.unload_all_models

    def unload_all_models(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        finally:
            count = release_resident()
            if count:
                gc.collect()
                _trim_heap()
                print(f"[IP-to-Portrait] released {count} resident model(s)", file=sys.stderr, flush=True)

    unload_all_models.i2p_releases = True
    unload_all_models.__wrapped__ = original
    mm.unload_all_models = unload_all_models


# -------------------------------------------------------------------------------- progress, interrupt
def check_interrupt() -> None:
    """Raise ComfyUI's InterruptProcessingException when the user pressed cancel; no-op outside."""
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


class Progress:
    """Progress with an optional preview picture: ComfyUI's bar in the editor, tqdm on the console.

    Every update is also an interrupt point, as in ComfyUI.
    """

    def __init__(self, total: int, desc: str = "IP-to-Portrait"):
        self.total = max(int(total), 1)
        self.value = 0
        cu = comfy_module("comfy.utils")
        self._bar = cu.ProgressBar(self.total) if cu is not None else None
        self._tqdm = None
        if self._bar is None and os.environ.get("I2P_QUIET") != "1":
            from tqdm import tqdm

            self._tqdm = tqdm(total=self.total, desc=desc, leave=False, file=sys.stderr)

    def update(self, n: int = 1, preview: Any | None = None, preview_size: int = 512) -> None:
        """Advance by ``n``; ``preview`` is a PIL image shown in the editor's node."""
        self.value = min(self.value + n, self.total)
        if self._bar is not None:
            pv = ("JPEG", preview, preview_size) if preview is not None else None
            self._bar.update_absolute(self.value, self.total, pv)
        elif self._tqdm is not None:
            self._tqdm.update(n)
        check_interrupt()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sampler_callback(model, steps: int) -> Callable | None:
    """Step previews for ComfyUI's sampler (``latent_preview.prepare_callback``); None outside."""
    lp = comfy_module("latent_preview")
    if lp is None:
        return None
    return lp.prepare_callback(model, steps)


def send_event(event: str, data: dict) -> None:
    """A custom websocket event to the editor; dropped outside ComfyUI."""
    server = comfy_module("server")
    if server is None:
        return
    instance = getattr(server.PromptServer, "instance", None)
    if instance is not None:
        instance.send_sync(event, data)


def interrupt_exception_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the user cancelled" and must never be swallowed."""
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        return (mm.InterruptProcessingException, KeyboardInterrupt)
    return (KeyboardInterrupt,)


# ------------------------------------------------------------------------------------ model family
def model_traits(model) -> dict:
    """What the pack needs to know about a ComfyUI MODEL's architecture, read from the ModelPatcher's
    own objects (no import of comfy): the model class names (``SDXL``, ``Flux2``, ``QwenImage`` ...),
    the latent format's channels, dimensions and pixel downscale, the transformer's patch size, and
    whether the model consumes ``reference_latents`` (ComfyUI marks edit-capable models with
    ``memory_usage_factor_conds = ("ref_latents",)``). Missing attributes read as SD-style defaults,
    so a duck-typed fake or an old ComfyUI still gets an answer."""
    inner = getattr(model, "model", None)
    latent_format = getattr(inner, "latent_format", None)
    config = getattr(inner, "model_config", None)
    diffusion = getattr(inner, "diffusion_model", None)
    return {
        "model_class": type(inner).__name__ if inner is not None else "",
        "config_class": type(config).__name__ if config is not None else "",
        "image_model": (getattr(config, "unet_config", None) or {}).get("image_model"),
        "diffusion_class": type(diffusion).__name__ if diffusion is not None else "",
        "latent_channels": int(getattr(latent_format, "latent_channels", 4)),
        "latent_dimensions": int(getattr(latent_format, "latent_dimensions", 2)),
        "downscale": int(getattr(latent_format, "spacial_downscale_ratio", 8)),
        "patch_size": int(getattr(diffusion, "patch_size", 1) or 1),
        "reference_latents": "ref_latents" in tuple(getattr(inner, "memory_usage_factor_conds", ()) or ()),
        "concat_keys": tuple(getattr(inner, "concat_keys", ()) or ()),
    }
