"""Test-wide rules: the pack is loaded the way ComfyUI loads it, no test reaches the network, and
tests marked ``comfyui`` run only when ``COMFYUI_PATH`` names a ComfyUI checkout."""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from packload import PACK_ROOT, load_pack, pack_module  # noqa: E402

pytest_plugins = ["comfyui_fixtures"]  # the real-ComfyUI server fixture and helpers

os.environ.setdefault("I2P_QUIET", "1")  # no console progress bars in test output
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ----------------------------------------------------------------------------------- network guard
_violations: list[str] = []


def _is_loopback(address) -> bool:
    if isinstance(address, (tuple, list)) and address:
        host = address[0]
    else:
        return True  # AF_UNIX paths and the like are local
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: not allowed


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guard(address) -> None:
    if not _is_loopback(address):
        _violations.append(repr(address))
        raise ConnectionRefusedError(f"test network guard: connection to {address!r} is not loopback")


def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _guard(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _guard(address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    _guard((host.decode() if isinstance(host, bytes) else host or "", 0))
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
socket.getaddrinfo = _getaddrinfo


@pytest.fixture(autouse=True)
def _no_network():
    """Fail the test even when library code swallowed the refused connection."""
    start = len(_violations)
    yield
    if len(_violations) > start:
        pytest.fail(f"test tried to reach the network: {_violations[start:]}")


# ------------------------------------------------------------------------------------- comfyui tier
def pytest_collection_modifyitems(config, items):
    path = os.environ.get("COMFYUI_PATH")
    if path and (Path(path) / "main.py").is_file():
        return
    skip = pytest.mark.skip(reason="COMFYUI_PATH does not name a ComfyUI checkout")
    for item in items:
        if "comfyui" in item.keywords:
            item.add_marker(skip)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def pack():
    return load_pack()


class TestModels:
    """A ComfyUI-style models/ tree of tiny random-weight models, built on first use."""

    def __init__(self, root: Path, profile: str = "tiny"):
        self.root = root
        self.profile = profile

    def get(self, model_id: str) -> Path:
        import model_factory

        return model_factory.build(model_id, self.root, self.profile)

    def group(self, group: str) -> Path:
        """Build every file of a manifest group (e.g. buffalo_l) and return their common folder."""
        manifest = pack_module("models.manifest")
        paths = [self.get(m.id) for m in manifest.in_group(group)]
        return paths[0].parent


@pytest.fixture(scope="session")
def test_models(tmp_path_factory) -> TestModels:
    root = tmp_path_factory.mktemp("models")
    os.environ["I2P_MODELS_DIR"] = str(root)
    return TestModels(root)
