"""The layout's seams, read from the source: no import circle between the pack's modules (imports
inside functions count too: a lazy import is still a dependency), the identity -> inpaint contract
spelled in one module, and one ONNX provider list."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from packload import PACK_ROOT

SKIP = ("tests", "bench", "workflows", ".venv", "build", "dist")  # build/: a local wheel build's copy


def _pack_files() -> dict[str, Path]:
    """Dotted module name (relative to the pack root) -> file, for the shipped code."""
    out = {}
    for path in PACK_ROOT.rglob("*.py"):
        rel = path.relative_to(PACK_ROOT)
        if rel.parts[0] in SKIP or rel.parts[0].startswith(".") or len(rel.parts) == 1:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the pack modules it imports (relative imports anywhere in the file)."""
    files = _pack_files()
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
            target = base + (node.module.split(".") if node.module else [])
            candidates = [".".join(target + [a.name]) for a in node.names] + [".".join(target)]
            graph[module].update(c for c in candidates if c in files and c != module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_imports_and_finds_a_planted_circle():
    graph = import_graph()
    assert "models.ipadapter" in graph["core.identity.apply"]
    assert "core.identity.contract" in graph["core.inpaint.sampling"]
    assert "core.errors" in graph["models.ipadapter"]
    planted = {k: set(v) for k, v in graph.items()}
    planted["models.ipadapter"].add("core.identity.apply")
    assert any("models.ipadapter" in c for c in cycles(planted))
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


UNITS = ("core.faces", "core.identity", "core.inpaint", "core.post", "core.prompt", "models", "nodes", "cli")


def _unit(module: str) -> str:
    return next((u for u in UNITS if module == u or module.startswith(u + ".")), "ground")


def test_no_import_circle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_circle_between_layers_and_stages():
    """Collapsed to units (the ground, each stage, models, nodes, cli): no unit reaches back to itself,
    e.g. core/identity -> models -> core/identity, the circle this layout removed."""
    units: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        units.setdefault(_unit(module), set()).update(_unit(d) for d in deps if _unit(d) != _unit(module))
    for u in list(units.values()):
        for d in u:
            units.setdefault(d, set())
    assert cycles(units) == []


def test_models_do_not_import_the_stages():
    """models/ sits under the stages: it may use the ground (errors, comfy_adapter), never a stage."""
    stages = ("core.faces", "core.identity", "core.inpaint", "core.post", "core.prompt")
    bad = [(m, d) for m, deps in import_graph().items() if m.startswith("models")
           for d in deps if d.startswith(stages) or d.startswith("nodes")]
    assert bad == []


def test_identity_contract_keys_are_spelled_once():
    """The MODEL-options keys of the identity -> inpaint contract appear as literals only in
    core/identity/contract.py; every other module imports them."""
    literal = re.compile(r"""["']i2p_identity(_mask)?["']""")
    hits = [str(p.relative_to(PACK_ROOT)) for m, p in _pack_files().items() if literal.search(p.read_text())]
    assert hits == ["core/identity/contract.py"]


def test_one_onnx_provider_list():
    """Every provider widget offers onnx_sessions.PROVIDER_CHOICES, and no other module spells a list
    of execution providers."""
    from packload import load_pack, pack_module

    pack = load_pack()
    choices = pack_module("core.onnx_sessions").PROVIDER_CHOICES
    widgets = []
    for cls in pack.NODE_CLASS_MAPPINGS.values():
        for group in cls.INPUT_TYPES().values():
            if "provider" in group:
                widgets.append(group["provider"][0])
    assert len(widgets) >= 2 and all(w == choices for w in widgets)
    spelled = sorted({str(p.relative_to(PACK_ROOT)) for m, p in _pack_files().items()
                      for node in ast.walk(ast.parse(p.read_text())) if _is_provider_list(node)})
    assert spelled == ["core/onnx_sessions.py"]


def _is_provider_list(node) -> bool:
    """A list/tuple/set/dict literal naming two or more execution providers (short or full names)."""
    if not isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        return False
    items = node.keys if isinstance(node, ast.Dict) else node.elts
    names = {e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    short = {"CPU", "CUDA", "CoreML", "DirectML", "ROCm", "TensorRT", "OpenVINO"}
    return len(names & short) >= 2 or sum(n.endswith("ExecutionProvider") for n in names) >= 2


def test_pyproject_lists_every_package():
    """The wheel ships what pyproject.toml lists: every folder of shipped code with an __init__.py
    (the stage sub-packages included) must be there, or an installed pack misses modules."""
    import tomllib

    listed = set(tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"ip_to_portrait"} | {"ip_to_portrait." + m for m, p in _pack_files().items() if p.name == "__init__.py"}
    assert found - listed == set()
    assert {"ip_to_portrait.core.faces", "ip_to_portrait.core.identity", "ip_to_portrait.core.inpaint",
            "ip_to_portrait.core.post", "ip_to_portrait.core.prompt"} <= listed
