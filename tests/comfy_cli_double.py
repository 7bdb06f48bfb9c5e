"""A test double of comfy-cli's ``comfy --skip-prompt --workspace=DIR install ...`` (nothing downloads).

It writes DIR as a ComfyUI whose ``main.py`` is the fake ComfyUI of ``fake_comfyui.py`` speaking the
real protocol on the port it is given; like real ComfyUI, the fake offers the pack's nodes only when
the pack sits in ``DIR/custom_nodes/ip_to_portrait`` (so the link step is tested too). Every call is
appended to ``DIR/../comfy_cli_calls.json``. ``I2P_COMFY_CLI_DOUBLE_FAIL=1`` makes it fail like a
broken install (exit 1, nothing written).

Use: ``I2P_COMFY_CLI="python tests/comfy_cli_double.py"``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

MAIN_PY = '''"""ComfyUI stand-in written by tests/comfy_cli_double.py."""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, {tests!r})
from fake_comfyui import FakeComfyUI, core_schemas, pack_schemas

parser = argparse.ArgumentParser()
parser.add_argument("--listen", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8188)
args, _ = parser.parse_known_args()
schemas = core_schemas()
if (Path(__file__).resolve().parent / "custom_nodes" / "ip_to_portrait" / "__init__.py").is_file():
    schemas.update(pack_schemas())
server = FakeComfyUI(schemas, port=args.port).start()
print(f"fake ComfyUI at {{server.url}}", flush=True)
while not server.dead:
    time.sleep(0.2)
'''


def main(argv: list[str]) -> int:
    workspace = next((a.split("=", 1)[1] for a in argv if a.startswith("--workspace=")), None)
    if workspace is None or "install" not in argv:
        print(f"comfy double: unsupported call {argv}", file=sys.stderr)
        return 2
    target = Path(workspace)
    log = target.parent / "comfy_cli_calls.json"
    calls = json.loads(log.read_text()) if log.is_file() else []
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps(calls + [argv]))
    if os.environ.get("I2P_COMFY_CLI_DOUBLE_FAIL") == "1":
        print("comfy double: git clone failed (simulated)", file=sys.stderr)
        return 1
    if (target / "main.py").exists():
        print(f"ComfyUI is already installed at the specified path: {target}", file=sys.stderr)
        return 1
    (target / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (target / "models").mkdir(exist_ok=True)
    (target / "main.py").write_text(MAIN_PY.format(tests=str(TESTS)))
    print(f"ComfyUI is installed at: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
