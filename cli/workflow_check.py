"""Offline checks of a workflow against node schemas (``/object_info`` entries).

``check_api`` applies the rules ComfyUI applies on ``POST /prompt`` (unknown node type, required input
missing, link type mismatch, int/float/bool/str coercion, min/max, combo membership) and reports them
in ComfyUI's own ``node_errors`` shape. It is stricter in one way: it checks every node, not only the
ones that feed an output. ``check_ui`` adds what only the editor's format can get wrong: positional
widget values, link records that disagree with the node slots, slot types that disagree with the
schema.
"""
from __future__ import annotations

from typing import Any, Callable

from .workflow_format import (CONTROL_VALUES, VIRTUAL_NODES, combo_options, is_link, is_widget, ordered_inputs, types_match, widget_layout)

#: ``accept(class_type, input_name, value, options)`` -> True to accept a combo value not in the list
#: (model files the checker cannot see, uploaded images).
ComboHook = Callable[[str, str, Any, list], bool]


def _err(kind: str, message: str, details: str) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def check_value(name: str, typ: Any, opts: dict, value: Any, accept: ComboHook | None, ctype: str) -> dict | None:
    options = combo_options(typ, opts)
    if options is not None:
        if value in options or (accept is not None and accept(ctype, name, value, options)):
            return None
        shown = f"(list of length {len(options)})" if len(options) > 20 else str(options)
        return _err("value_not_in_list", "Value not in list", f"{name}: {value!r} not in {shown}")
    try:
        if typ == "INT":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("not an integer")
            value = int(value)
        elif typ == "FLOAT":
            value = float(value)
        elif typ == "STRING":
            if not isinstance(value, str):
                raise ValueError("not a string")
        elif typ == "BOOLEAN":
            if not isinstance(value, bool):
                raise ValueError("not a boolean")
    except (TypeError, ValueError) as exc:
        return _err("invalid_input_type", f"Failed to convert an input value to a {typ} value",
                    f"{name}, {value}, {exc}")
    if typ in ("INT", "FLOAT"):
        if "min" in opts and value < opts["min"]:
            return _err("value_smaller_than_min", f"Value {value} smaller than min of {opts['min']}", name)
        if "max" in opts and value > opts["max"]:
            return _err("value_bigger_than_max", f"Value {value} bigger than max of {opts['max']}", name)
    return None


def check_api(prompt: dict, schemas: dict[str, dict], accept: ComboHook | None = None) -> tuple[dict | None, dict]:
    """``(error, node_errors)`` the way ComfyUI's 400 answer has them; ``(None, {})`` when valid."""
    for nid, node in prompt.items():
        ctype = node.get("class_type")
        if ctype not in schemas:
            title = (node.get("_meta") or {}).get("title", ctype)
            return _err("missing_node_type", f"Node '{title}' not found. The custom node may not be installed.",
                        f"Node ID '#{nid}'"), {}
    if not any(schemas[n["class_type"]].get("output_node") for n in prompt.values()):
        return _err("prompt_no_outputs", "Prompt has no outputs", ""), {}
    node_errors: dict[str, dict] = {}
    for nid, node in prompt.items():
        ctype = node["class_type"]
        errors = []
        inputs = node.get("inputs", {})
        for name, typ, opts, section in ordered_inputs(schemas[ctype]):
            if name not in inputs:
                if section == "required":
                    errors.append(_err("required_input_missing", "Required input is missing", name))
                continue
            value = inputs[name]
            if isinstance(value, list):
                if not is_link(value):
                    errors.append(_err("bad_linked_input", "Bad linked input, must be a length-2 list of "
                                       "[node_id, slot_index]", name))
                    continue
                src = prompt.get(str(value[0]))
                if src is None:
                    errors.append(_err("bad_linked_input", "Linked node does not exist", f"{name}: {value}"))
                    continue
                outputs = schemas[src["class_type"]].get("output", [])
                if not 0 <= value[1] < len(outputs):
                    errors.append(_err("bad_linked_input", "Linked output slot does not exist", f"{name}: {value}"))
                    continue
                received = outputs[value[1]]
                if not types_match(received if isinstance(received, str) else "COMBO", typ):
                    errors.append(_err("return_type_mismatch", "Return type mismatch between linked nodes",
                                       f"{name}, received_type({received}) mismatch input_type({typ})"))
                continue
            problem = check_value(name, typ, opts, value, accept, ctype)
            if problem is not None:
                errors.append(problem)
        if errors:
            node_errors[nid] = {"errors": errors, "dependent_outputs": [], "class_type": ctype}
    if node_errors:
        details = "\n".join(f"{e['message']}: {e['details']}" for v in node_errors.values() for e in v["errors"])
        return _err("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), node_errors
    return None, {}


def check_ui(ui: dict, schemas: dict[str, dict]) -> list[str]:
    """Problems specific to the UI format, as readable lines (empty when it is consistent)."""
    problems: list[str] = []
    nodes = {n["id"]: n for n in ui.get("nodes", [])}
    links = {link[0]: link for link in ui.get("links", [])}
    if len(nodes) != len(ui.get("nodes", [])):
        problems.append("two nodes share an id")
    if nodes and ui.get("last_node_id", 0) < max(nodes):
        problems.append("last_node_id is smaller than a node id")
    if links and ui.get("last_link_id", 0) < max(links):
        problems.append("last_link_id is smaller than a link id")
    for lid, (link_id, src, src_slot, dst, dst_slot, ltype) in links.items():
        where = f"link {lid}"
        if src not in nodes or dst not in nodes:
            problems.append(f"{where}: joins a node that does not exist")
            continue
        outs = nodes[src].get("outputs") or []
        ins = nodes[dst].get("inputs") or []
        if not 0 <= src_slot < len(outs) or lid not in (outs[src_slot].get("links") or []):
            problems.append(f"{where}: node {src} output {src_slot} does not list it")
        elif outs[src_slot].get("type") != ltype:
            problems.append(f"{where}: type {ltype} differs from its output's {outs[src_slot].get('type')}")
        if not 0 <= dst_slot < len(ins) or ins[dst_slot].get("link") != lid:
            problems.append(f"{where}: node {dst} input {dst_slot} does not point at it")
        elif not types_match(ltype, ins[dst_slot].get("type")):
            problems.append(f"{where}: {ltype} into input '{ins[dst_slot].get('name')}' of type {ins[dst_slot].get('type')}")
    for nid, node in nodes.items():
        ntype = node.get("type")
        if ntype in VIRTUAL_NODES:
            if node.get("inputs") or any(o.get("links") for o in node.get("outputs") or []):
                problems.append(f"node {nid} ({ntype}) is a note but has connections")
            continue
        schema = schemas.get(ntype)
        if schema is None:
            problems.append(f"node {nid}: unknown node type {ntype}")
            continue
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None and slot["link"] not in links:
                problems.append(f"node {nid}: input '{slot.get('name')}' points at missing link {slot['link']}")
        for i, slot in enumerate(node.get("outputs") or []):
            for lid in slot.get("links") or []:
                if lid not in links or links[lid][1] != nid or links[lid][2] != i:
                    problems.append(f"node {nid}: output {i} lists link {lid} that does not start there")
        problems += _check_slots(nid, node, schema)
        problems += _check_widgets(nid, node, schema)
    return problems


def _check_slots(nid, node: dict, schema: dict) -> list[str]:
    problems = []
    spec = {name: (typ, opts) for name, typ, opts, _ in ordered_inputs(schema)}
    for slot in node.get("inputs") or []:
        name = (slot.get("widget") or {}).get("name") or slot.get("name")
        if name not in spec:
            problems.append(f"node {nid}: input '{name}' is not an input of {node['type']}")
            continue
        typ, opts = spec[name]
        expected = "COMBO" if combo_options(typ, opts) is not None else typ
        if slot.get("type") != expected:
            problems.append(f"node {nid}: input '{name}' has type {slot.get('type')}, the node says {expected}")
        if is_widget(typ, opts) and not slot.get("widget"):
            problems.append(f"node {nid}: widget input '{name}' lacks its 'widget' marker")
    sockets = [name for name, typ, opts, _ in ordered_inputs(schema) if not is_widget(typ, opts)]
    given = [(s.get("widget") or {}).get("name") or s.get("name") for s in node.get("inputs") or []]
    missing = [s for s in sockets if s not in given]
    if missing:
        problems.append(f"node {nid}: socket input(s) {missing} are not listed")
    outs = node.get("outputs") or []
    if [o.get("type") for o in outs] != list(schema.get("output", [])):
        problems.append(f"node {nid}: outputs {[o.get('type') for o in outs]} differ from {schema.get('output')}")
    return problems


def _check_widgets(nid, node: dict, schema: dict) -> list[str]:
    values = node.get("widgets_values") or []
    if isinstance(values, dict):
        return []
    layout = widget_layout(schema)
    required = [k for k in layout if k[1] != "upload"]
    if len(values) not in (len(required), len(layout)):
        return [f"node {nid} ({node['type']}): {len(values)} widget values, expected {len(required)} "
                f"({', '.join(n + ('' if k == 'value' else ' ' + k) for n, k in required)})"]
    problems = []
    for (name, kind), value in zip(layout if len(values) == len(layout) else required, values):
        if kind == "upload" and value != "image":
            problems.append(f"node {nid}: the upload button value of '{name}' is {value!r}, not 'image'")
        elif kind == "control" and value not in CONTROL_VALUES:
            problems.append(f"node {nid}: '{name}' control value {value!r} is not one of {CONTROL_VALUES}")
    return problems
