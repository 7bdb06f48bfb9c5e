"""The bundled workflows, checked offline the way ComfyUI would check them, and (tier ``comfyui``)
run to completion in a real ComfyUI with the full-size random-weight test models."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

import shipped_workflows as sw
from packload import PACK_ROOT, load_pack, pack_module

WORKFLOWS = PACK_ROOT / "workflows"
API = WORKFLOWS / "api"
CORE_OBJECT_INFO = Path(__file__).parent / "data" / "comfyui-0.33.0-core-object_info.json"
EXPECTED = {"recommended_portrait": 1, "fast_swap": 1, "couple_photo": 2, "auto_prompt": 1, "pre_paste": 1,
            "commercial_portrait": 1, "commercial_couple": 2, "edit_model_portrait": 1,
            "qwen_edit_portrait": 1}
COMMERCIAL = ("commercial_portrait", "commercial_couple")
NAMES = sorted(EXPECTED)

fmt = pack_module("cli.workflow_format")
check = pack_module("cli.workflow_check")


@pytest.fixture(scope="module")
def core() -> dict:
    return json.loads(CORE_OBJECT_INFO.read_text())["nodes"]


@pytest.fixture(scope="module")
def pack_nodes() -> dict:
    return dict(load_pack().NODE_CLASS_MAPPINGS)


@pytest.fixture(scope="module")
def schemas(core, pack_nodes) -> dict:
    return {**core, **{n: fmt.schema_from_class(n, c) for n, c in pack_nodes.items()}}


@pytest.fixture(scope="module")
def accept(schemas):
    """Combo values ComfyUI would only know at run time: uploaded images (LoadImage checks the file
    itself) and model files, which must be files the manifest knows."""
    manifest = pack_module("models.manifest")
    files = set()
    for m in manifest.MODELS:
        files |= {m.filename, m.filename.split("/")[-1], *m.aliases}

    def hook(ctype, name, value, options):
        spec = {n: o for n, _, o, _ in fmt.ordered_inputs(schemas[ctype])}
        if spec.get(name, {}).get("image_upload"):
            return isinstance(value, str) and bool(value)
        return value in files

    return hook


def ui(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))


def api(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- the folder
def test_the_workflows_ship_in_both_formats_with_thumbnails():
    assert {p.stem for p in WORKFLOWS.glob("*.json")} == set(EXPECTED)
    assert {p.stem for p in API.glob("*.json")} == set(EXPECTED)
    for name in EXPECTED:
        with Image.open(WORKFLOWS / f"{name}.jpg") as im:
            assert im.format == "JPEG" and im.width >= 320 and im.height >= 120


def test_served_folder_holds_only_ui_format():
    """ComfyUI serves every *.json directly in workflows/ as an editor template (UI format only)."""
    for path in WORKFLOWS.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert fmt.is_ui_format(data) and not fmt.is_api_format(data), path
    for path in API.glob("*.json"):
        assert fmt.is_api_format(json.loads(path.read_text(encoding="utf-8"))), path


def test_files_are_what_the_generator_builds():
    spec = importlib.util.spec_from_file_location("i2p_workflows_build", WORKFLOWS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.main(["--check"]) == 0, "workflows are stale: run python workflows/build.py"


# ---------------------------------------------------------------------------------- per workflow
@pytest.mark.parametrize("name", NAMES)
def test_every_node_type_exists(name, core, pack_nodes):
    for node in ui(name)["nodes"]:
        t = node["type"]
        if t in fmt.VIRTUAL_NODES:
            continue
        if t.startswith("I2P"):
            assert t in pack_nodes, f"{name}: pack node {t} is not in NODE_CLASS_MAPPINGS"
        else:
            assert t in core, f"{name}: {t} is not a core node of ComfyUI 0.33.0"


@pytest.mark.parametrize("name", NAMES)
def test_api_version_passes_comfyui_validation(name, schemas, accept):
    error, node_errors = check.check_api(api(name), schemas, accept)
    assert error is None and node_errors == {}, (error, json.dumps(node_errors, indent=1))


@pytest.mark.parametrize("name", NAMES)
def test_ui_version_is_consistent(name, schemas):
    assert check.check_ui(ui(name), schemas) == []


@pytest.mark.parametrize("name", NAMES)
def test_ui_version_has_the_editors_schema(name):
    """The fields the editor's workflow schema (version 0.4) requires, with their types."""
    import uuid

    data = ui(name)
    uuid.UUID(data["id"])
    assert isinstance(data["version"], (int, float)) and isinstance(data["last_link_id"], int)
    assert isinstance(data["last_node_id"], (int, str))
    num = (int, float)
    for node in data["nodes"]:
        assert isinstance(node["id"], int) and isinstance(node["type"], str)
        for key in ("pos", "size"):
            assert len(node[key]) == 2 and all(isinstance(v, num) for v in node[key])
        assert isinstance(node["flags"], dict) and isinstance(node["order"], int) and isinstance(node["mode"], int)
        assert isinstance(node["properties"], dict) and isinstance(node["widgets_values"], list)
        for slot in node["inputs"]:
            assert isinstance(slot["name"], str) and isinstance(slot["type"], str)
            assert slot["link"] is None or isinstance(slot["link"], int)
        for slot in node["outputs"]:
            assert isinstance(slot["name"], str) and all(isinstance(i, int) for i in slot["links"])
    for link in data["links"]:
        assert len(link) == 6 and all(isinstance(v, int) for v in link[:5]) and isinstance(link[5], str)
    for group in data["groups"]:
        assert isinstance(group["title"], str) and len(group["bounding"]) == 4
    assert set(data["extra"]["ds"]) >= {"scale", "offset"}
    assert [n["order"] for n in data["nodes"]] == list(range(len(data["nodes"])))


@pytest.mark.parametrize("name", NAMES)
def test_ui_and_api_versions_describe_the_same_graph(name, schemas):
    converted = fmt.ui_to_api(ui(name), schemas)
    shipped = api(name)
    assert set(converted) == set(shipped)
    for nid in shipped:
        assert converted[nid]["class_type"] == shipped[nid]["class_type"], nid
        assert converted[nid]["inputs"] == shipped[nid]["inputs"], nid
        assert converted[nid]["_meta"]["title"] == shipped[nid]["_meta"]["title"], nid
    assert fmt.graph_edges_api(converted) == fmt.graph_edges_api(shipped)


@pytest.mark.parametrize("name", NAMES)
def test_has_a_description_note_and_groups(name):
    data = ui(name)
    notes = [n for n in data["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1 and len(notes[0]["widgets_values"][0]) > 200
    assert "custom_nodes/ip_to_portrait/i2p.py run --workflow " + name in notes[0]["widgets_values"][0]
    text = notes[0]["widgets_values"][0]
    if name in COMMERCIAL:
        assert "commercial use" in text and "require commercial" in text and "BiSeNet" in text
    else:
        assert "NON-COMMERCIAL" in text
    assert len(data["groups"]) >= 3
    for node in data["nodes"]:  # every non-note node sits inside some group
        if node["type"] == "Note":
            continue
        x, y = node["pos"]
        assert any(g["bounding"][0] <= x <= g["bounding"][0] + g["bounding"][2]
                   and g["bounding"][1] <= y <= g["bounding"][1] + g["bounding"][3] for g in data["groups"]), node["id"]


@pytest.mark.parametrize("name", NAMES)
def test_cli_finds_the_photo_inputs(name):
    io_ = pack_module("cli.workflow_io")
    prompt = api(name)
    slots = io_.image_slots(prompt)
    assert "reference" in slots
    assert io_.face_count(prompt) == EXPECTED[name]
    filled = io_.fill(prompt, "r.png", [f"f{i}.png" for i in range(EXPECTED[name])], 99)
    assert filled[slots["reference"]]["inputs"]["image"] == "r.png"
    assert any(n["inputs"].get("seed") == 99 for n in filled.values()) or name == "fast_swap"


def inputs_by_type(prompt: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for node in prompt.values():
        out.setdefault(node["class_type"], []).append(node["inputs"])
    return out


def test_recommended_settings():
    """The seed's recommended settings, read from the shipped file: steps 30, CFG 5.5, denoise 0.9, face
    strength 0.8, stop-at 0.9, hair and neck on, inswapper swap, GFPGAN 0.85-0.95."""
    by_type = inputs_by_type(api("recommended_portrait"))
    [identity] = by_type["I2PApplyIdentity"]
    assert identity["mode"] == "FaceID Plus v2" and identity["stop_at"] == 0.9 and identity["start_at"] == 0.0
    assert identity["weight"] == 0.8 and identity["steps"] == 30
    [inpaint] = by_type["I2PFaceInpaint"]
    assert inpaint["target_size"] == 1024
    assert (inpaint["steps"], inpaint["cfg"], inpaint["denoise"]) == (30, 5.5, 0.9)
    [swap] = by_type["I2PFaceSwap"]
    assert swap["swap_model"] == "inswapper_128.onnx"
    [restore] = by_type["I2PFaceRestore"]
    assert restore["restore_model"] == "GFPGANv1.4.pth" and 0.85 <= restore["strength"] <= 0.95
    assert "I2PFacePrePaste" not in by_type and len(by_type["I2PFaceInpaint"]) == 1  # no pre-paste, no refinement
    assert "I2PIdentityScore" in by_type and "SaveImage" in by_type
    masks = [n for n in by_type if "Mask" in n and n.startswith("I2P")]
    for m in masks:
        for inputs in by_type[m]:
            assert inputs.get("include_hair", True) and inputs.get("include_neck", True)


def test_sdxl_workflows_share_the_recommended_sampler_settings():
    """couple_photo and auto_prompt give every person the recommended treatment; pre_paste differs only
    in denoise (0.65: it keeps the pasted face) and has no identity patch."""
    ref = inputs_by_type(api("recommended_portrait"))
    [ref_inpaint], [ref_identity] = ref["I2PFaceInpaint"], ref["I2PApplyIdentity"]
    for name in ("couple_photo", "auto_prompt", "pre_paste"):
        by_type = inputs_by_type(api(name))
        for inpaint in by_type["I2PFaceInpaint"]:
            for key in ("steps", "cfg", "sampler_name", "scheduler", "target_size"):
                assert inpaint[key] == ref_inpaint[key], (name, key)
            assert inpaint["denoise"] == (0.65 if name == "pre_paste" else ref_inpaint["denoise"]), name
        for identity in by_type.get("I2PApplyIdentity", []):
            for key in ("mode", "weight", "start_at", "stop_at", "steps"):
                assert identity[key] == ref_identity[key], (name, key)
        for restore in by_type.get("I2PFaceRestore", []):
            assert restore["strength"] == ref["I2PFaceRestore"][0]["strength"], name


def test_fast_swap_has_no_diffusion():
    types = {n["class_type"] for n in api("fast_swap").values()}
    assert not types & {"CheckpointLoaderSimple", "I2PFaceInpaint", "KSampler", "I2PApplyIdentity"}
    assert {"I2PFaceSwap", "I2PFaceRestore", "I2PIdentityScore"} <= types


def test_auto_prompt_feeds_the_conditioning():
    prompt = api("auto_prompt")
    gemini = [nid for nid, n in prompt.items() if n["class_type"] == "I2PAutoPromptGemini"]
    assert len(gemini) == 1
    texts = [n["inputs"]["text"] for n in prompt.values() if n["class_type"] == "CLIPTextEncode"]
    assert [gemini[0], 0] in texts and [gemini[0], 1] in texts


# ------------------------------------------------------------------------- licences of the graphs
@pytest.mark.parametrize("name", NAMES)
def test_photos_reach_the_graph_only_through_the_license_check(name):
    """Every stage takes its photos from I2P License Check, so in 'require commercial' mode nothing is
    detected or sampled before the graph has passed it."""
    prompt = api(name)
    checks = [nid for nid, n in prompt.items() if n["class_type"] == "I2PLicenseCheck"]
    assert len(checks) == 1
    assert prompt[checks[0]]["inputs"]["mode"] == ("require commercial" if name in COMMERCIAL else "warn")
    loaders = {nid for nid, n in prompt.items() if n["class_type"] == "LoadImage"}
    for nid, node in prompt.items():
        for value in node["inputs"].values():
            if isinstance(value, list) and value[0] in loaders:
                assert nid == checks[0], f"{name}: node {nid} takes a photo around the licence check"
    linked = {v[0] for v in prompt[checks[0]]["inputs"].values() if isinstance(v, list)}
    assert linked == loaders


# nodes that load no model file (everything else must be a loader the licence audit knows)
NO_FILES = {"LoadImage", "I2PLicenseCheck", "I2PDetectFaces", "I2PFaceBoxMask", "I2PFacePrePaste", "CLIPTextEncode",
            "I2PFaceInpaint", "I2PIdentityScore", "SaveImage", "PreviewImage"}


@pytest.mark.parametrize("name", COMMERCIAL)
def test_commercial_workflows_load_only_files_marked_commercial(name):
    audit = pack_module("models.audit")
    prompt = api(name)
    result = audit.audit(prompt)
    loaders = {f.node_id for f in result.files}
    for nid, node in prompt.items():  # no node that could load a file escapes the audit
        assert node["class_type"] in NO_FILES or nid in loaders, f"{name}: {node['class_type']} is not audited"
    assert result.files and result.commercial, result.report()
    assert all(f.entry is not None and f.entry.commercial for f in result.files)
    files = {f.file for f in result.files}
    assert "facedetection/face_detection_yunet_2023mar.onnx" in files
    assert "insightface/models/auraface/glintr100.onnx" in files
    ckpt = [n["inputs"]["ckpt_name"] for n in prompt.values() if n["class_type"] == "CheckpointLoaderSimple"]
    manifest = pack_module("models.manifest")
    assert ckpt and all(manifest.by_filename("checkpoints", c).commercial for c in ckpt)
    assert not any("buffalo_l" in f or "parsing" in f or "inswapper" in f or "faceid" in f for f in files)


def test_commercial_couple_maps_each_person_explicitly():
    prompt = api("commercial_couple")
    title = {nid: n["_meta"]["title"] for nid, n in prompt.items()}
    pastes = [n for n in prompt.values() if n["class_type"] == "I2PFacePrePaste"]
    assert len(pastes) == 2
    targets = [prompt[p["inputs"]["faces"][0]]["inputs"]["indices"] for p in pastes]
    assert targets == ["0", "1"]
    [check] = [nid for nid, n in prompt.items() if n["class_type"] == "I2PLicenseCheck"]
    for paste, person in zip(pastes, ("Face photo (person 1, left)", "Face photo 2 (person 2, right)")):
        link = paste["inputs"]["source_image"]  # the face photo, through the licence check
        assert link[0] == check
        loader = prompt[check]["inputs"][("images", "images_2", "images_3")[link[1]]][0]
        assert title[loader] == person
        assert prompt[paste["inputs"]["source_faces"][0]]["inputs"]["image"] == link  # faces of that photo
    scores = [n["inputs"]["target_indices"] for n in prompt.values() if n["class_type"] == "I2PIdentityScore"]
    assert scores == ["0", "1"]


# ------------------------------------------------------------------- the checker can say no
def test_checker_catches_what_comfyui_rejects(schemas, accept):
    good = api("fast_swap")
    swap = next(nid for nid, n in good.items() if n["class_type"] == "I2PFaceSwap")
    detect = next(nid for nid, n in good.items() if n["class_type"] == "I2PDetectFaces")
    cases = {
        "value_bigger_than_max": (swap, "mask_erode", 5.0),
        "value_smaller_than_min": (detect, "threshold", 0.0),
        "value_not_in_list": (swap, "swap_model", "nope.onnx"),
        "invalid_input_type": (detect, "det_size", "large"),
        "return_type_mismatch": (swap, "target_faces", [next(iter(good)), 0]),  # LoadImage's IMAGE
    }
    for kind, (nid, key, value) in cases.items():
        bad = copy.deepcopy(good)
        bad[nid]["inputs"][key] = value
        error, node_errors = check.check_api(bad, schemas, accept)
        assert [e["type"] for e in node_errors[nid]["errors"]] == [kind], kind
    bad = copy.deepcopy(good)
    del bad[swap]["inputs"]["source_faces"]
    assert check.check_api(bad, schemas, accept)[1][swap]["errors"][0]["type"] == "required_input_missing"
    bad = copy.deepcopy(good)
    bad[swap]["class_type"] = "I2PNoSuchNode"
    assert check.check_api(bad, schemas, accept)[0]["type"] == "missing_node_type"


def test_ui_checker_catches_shifted_widgets_and_broken_links(schemas):
    data = ui("fast_swap")
    swap = next(n for n in data["nodes"] if n["type"] == "I2PFaceSwap")
    swap["widgets_values"] = swap["widgets_values"][1:]
    data["links"][0][5] = "MASK"
    problems = check.check_ui(data, schemas)
    assert any("widget values, expected" in p for p in problems)
    assert any(p.startswith(f"link {data['links'][0][0]}:") for p in problems)


def test_seed_widget_gets_its_control_value(schemas):
    layout = fmt.widget_layout(schemas["KSampler"])
    assert layout[:3] == [("seed", "value"), ("seed", "control"), ("steps", "value")]
    assert fmt.widget_layout(schemas["LoadImage"]) == [("image", "value"), ("image", "upload")]
    inpaint = [k for k in fmt.widget_layout(schemas["I2PFaceInpaint"]) if k[0] == "seed"]
    assert inpaint == [("seed", "value"), ("seed", "control")]


# ----------------------------------------------------------------------------- real ComfyUI tier
def test_tier_helper_changes_only_the_cpu_knobs():
    """What the comfyui tier queues is the shipped file: the helper changes nothing else, every knob it
    may change is there to change, and the check notices any other edit."""
    assert sw.names() == NAMES
    for name in NAMES:
        shipped = api(name)
        run = sw.for_cpu(shipped)
        assert sw.unexpected_changes(shipped, run) == [], name
        assert any(node["inputs"].get("steps") == sw.CPU_KNOBS["steps"] for node in run.values()) or name == "fast_swap"
        assert shipped == api(name)  # the helper works on a copy
    shipped = api("recommended_portrait")
    for nid, node in shipped.items():
        for key, value in node["inputs"].items():
            if isinstance(value, list) or key in sw.CPU_KNOBS or node["class_type"] == "LoadImage":
                continue
            edited = copy.deepcopy(shipped)
            edited[nid]["inputs"][key] = "changed" if not isinstance(value, str) else value + "x"
            assert sw.unexpected_changes(shipped, edited), (nid, key)
    edited = copy.deepcopy(shipped)
    swap = next(n for n in edited.values() if n["class_type"] == "I2PFaceSwap")
    swap["inputs"]["content_safety"] = "off"
    assert any("content_safety" in c for c in sw.unexpected_changes(shipped, edited))
    edited = copy.deepcopy(shipped)
    edited.pop(next(iter(edited)))
    assert sw.unexpected_changes(shipped, edited)


def _run_shipped(name: str, folder: Path, server, capsys) -> dict:
    """Queue the shipped workflow with the CLI (photos, CPU knobs, the shipped seed) and check that
    it ran to the end and that the prompt ComfyUI recorded is the shipped one; returns the summary."""
    from skimage import data as skdata

    folder.mkdir(parents=True, exist_ok=True)
    ref, face, face2 = folder / "ref.png", folder / "face.png", folder / "face2.png"
    Image.fromarray(skdata.astronaut()).save(ref)
    Image.fromarray(skdata.astronaut()).resize((384, 384)).save(face)
    Image.fromarray(skdata.astronaut()[::-1].copy()).save(face2)
    shipped = api(name)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(sw.for_cpu(shipped)))
    argv = ["run", "--workflow", str(path), "--reference", str(ref), "--out", str(folder / "out"),
            "--server", server.url]
    seed = sw.shipped_seed(shipped)
    if seed is not None:  # the CLI always sets a seed: give it the shipped one
        argv += ["--seed", str(seed)]
    for f in [face, face2][:EXPECTED[name]]:
        argv += ["--face", str(f)]
    rc = pack_module("cli.main").main(argv)
    result = json.loads((folder / "out" / "summary.json").read_text())[0]
    assert rc == 0, result["message"] + "\n" + server.log_tail(40)
    assert result["status"] == "ok" and result["outputs"], result
    assert "some outputs will not run" not in capsys.readouterr().err  # no node_errors in the 200 answer
    queued = server.history(result["prompt_id"])["prompt"][2]
    assert sw.unexpected_changes(shipped, queued) == []
    with Image.open(result["outputs"][0]) as im, Image.open(ref) as r:
        assert im.size == r.size
    return result


@pytest.mark.comfyui
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_in_real_comfyui(name, tmp_path, comfyui_server, capsys):
    """Through POST /prompt with the CLI, in a real ComfyUI with the full random-weight models: the
    shipped graph (content-safety gate on) with only the photos and the CPU knobs changed, checked
    on the prompt ComfyUI recorded; every node runs and the saved image has the reference's size.
    The shared server's peak RSS during the run is recorded (heap kept from earlier graphs included)."""
    comfyui_server.free_memory()
    _settle(comfyui_server)
    comfyui_server.reset_peak_rss()
    result = _run_shipped(name, tmp_path, comfyui_server, capsys)
    now, peak = comfyui_server.rss_bytes()
    comfyui_server.record_figure(f"workflow {name}: server peak RSS {peak / 2**30:.2f} GiB in the shared tier server "
                                 f"(what a workflow needs alone: bench/workflow_memory.py), {result['seconds']:.0f} s "
                                 f"(steps {sw.CPU_KNOBS['steps']}, target_size {sw.CPU_KNOBS['target_size']})")


def _settle(server, seconds: float = 20.0) -> int:
    """The server's RSS once it stops moving (ComfyUI frees between prompts, then collects garbage)."""
    import time

    last = server.rss_bytes()[0]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = server.rss_bytes()[0]
        if abs(now - last) < 8 * 2**20:
            return now
        last = now
    return last


def _free(server, free_memory: bool) -> int:
    """``POST /free`` (``unload_models``, optionally ``free_memory``) after a run of the pack's nodes:
    wait until the pack reports its release (ComfyUI acts on the flags in its prompt worker), then
    for the RSS to settle; returns it."""
    import time

    marker = len(server.log_text())
    server.free_memory(unload_models=True, free_memory=free_memory)
    deadline = time.monotonic() + 60
    while "[IP-to-Portrait] released" not in server.log_text()[marker:] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "[IP-to-Portrait] released" in server.log_text()[marker:], server.log_tail(30)
    return _settle(server)


@pytest.mark.comfyui
@pytest.mark.slow
def test_free_releases_the_packs_resident_models(tmp_path, comfyui_server, capsys):
    """``POST /free`` with ``unload_models`` (the editor's "Unload models") lets go of the pack's own
    models: the swap session, the safety classifier, GFPGAN. On a CPU ComfyUI itself releases no RAM
    for them (unloading moves weights from CPU to CPU), so the drop measured here is the pack's."""
    server = comfyui_server
    _run_shipped("fast_swap", tmp_path / "warm", server, capsys)  # imports and first loads
    base = _free(server, free_memory=True)
    _run_shipped("fast_swap", tmp_path / "run", server, capsys)
    loaded = _settle(server, 5)
    released = _free(server, free_memory=False)
    gib = 2**30
    server.record_figure(f"/free after fast_swap: RSS {loaded / gib:.2f} GiB loaded, {released / gib:.2f} GiB after "
                         f"unload_models ({base / gib:.2f} GiB after a full /free before the run)")
    share = loaded - base
    assert share > 300 * 2**20, (base, loaded)  # the run loaded the pack's models again
    assert loaded - released >= 0.5 * share, (base, loaded, released)
