"""``python -m ip_to_portrait run`` against a fake ComfyUI speaking the real protocol (HTTP + /ws on
loopback), and, when COMFYUI_PATH is set, against the real one with the full-size test models."""
from __future__ import annotations

import _thread
import csv
import json
import os
import socket
import struct
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from fake_comfyui import FakeComfyUI, jpeg_bytes
from packload import pack_module

TESTS = Path(__file__).resolve().parent


def cli(*argv: str) -> int:
    return pack_module("cli.main").main(list(argv))


def workflow(tmp_path: Path, faces: int = 1, **overrides) -> Path:
    """A small core-node workflow: LoadImage reference + faces -> ImageBlend -> SaveImage, plus a
    RandomNoise node so the seed convention has something to fill."""
    wf = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Reference photo"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Face photo"}},
        "3": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["2", 0], "blend_factor": 0.5,
                                                     "blend_mode": "normal"}, "_meta": {"title": "Blend"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "i2p/test"},
              "_meta": {"title": "Save result"}},
        "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}, "_meta": {"title": "Noise"}},
    }
    if faces == 2:
        wf["6"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Face photo 2"}}
        wf["7"] = {"class_type": "ImageBlend", "inputs": {"image1": ["3", 0], "image2": ["6", 0], "blend_factor": 0.5,
                                                          "blend_mode": "normal"}, "_meta": {"title": "Blend 2"}}
        wf["4"]["inputs"]["images"] = ["7", 0]
    for key, value in overrides.items():
        nid, name = key.split("__")
        wf[nid]["inputs"][name] = value
    path = tmp_path / f"wf_{faces}.json"
    path.write_text(json.dumps(wf))
    return path


@pytest.fixture()
def photos(tmp_path):
    paths = {}
    for name, colour in (("ref", (200, 20, 20)), ("face", (20, 200, 20)), ("face2", (20, 20, 200))):
        paths[name] = tmp_path / f"{name}.jpg"
        Image.new("RGB", (48, 48), colour).save(paths[name])
    return paths


@pytest.fixture()
def fake():
    with FakeComfyUI() as server:
        yield server


def summary(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())


# -------------------------------------------------------------------------------------------- one job
def test_single_job_uploads_fills_runs_and_downloads(tmp_path, photos, fake, capsys):
    out = tmp_path / "out"
    rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]),
             "--face", str(photos["face"]), "--seed", "1234", "--out", str(out), "--server", fake.url)
    assert rc == 0, capsys.readouterr().err
    # uploads arrived byte for byte, and the prompt names them in the right LoadImage nodes
    assert fake.uploads["i2p_cli/ref.jpg"] == photos["ref"].read_bytes()
    assert fake.uploads["i2p_cli/face.jpg"] == photos["face"].read_bytes()
    body = fake.prompts[0]
    assert body["prompt"]["1"]["inputs"]["image"] == "i2p_cli/ref.jpg"
    assert body["prompt"]["2"]["inputs"]["image"] == "i2p_cli/face.jpg"
    assert body["prompt"]["5"]["inputs"]["noise_seed"] == 1234
    assert body["client_id"]
    # the saved image was downloaded under the job's name, identical to the server's file
    [result] = summary(out)
    assert result["status"] == "ok" and len(result["outputs"]) == 1
    saved = Path(result["outputs"][0])
    assert saved.parent == out and saved.name.startswith("ref_")
    [(key, data)] = [(k, v) for k, v in fake.files.items() if k[0] == "output"]
    assert saved.read_bytes() == data
    assert not list(out.glob("*.part"))
    assert str(saved) in capsys.readouterr().out  # the result path is printed for scripts


def test_count_gives_consecutive_seeds(tmp_path, photos, fake):
    out = tmp_path / "out"
    assert cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
               str(photos["face"]), "--seed", "7", "--count", "3", "--out", str(out), "--server", fake.url) == 0
    seeds = sorted(p["prompt"]["5"]["inputs"]["noise_seed"] for p in fake.prompts)
    assert seeds == [7, 8, 9]
    results = summary(out)
    assert [r["job"] for r in results] == ["ref_01", "ref_02", "ref_03"]
    assert all(r["status"] == "ok" and len(r["outputs"]) == 1 for r in results)


def test_previews_are_saved_on_request(tmp_path, photos, fake):
    out = tmp_path / "out"
    assert cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
               str(photos["face"]), "--out", str(out), "--server", fake.url, "--previews") == 0
    assert fake.prompts[0]["extra_data"]["preview_method"] == "auto"
    frames = sorted((out / "previews" / "ref").glob("*.jpg"))
    assert len(frames) == fake.steps
    assert Image.open(frames[0]).format == "JPEG"


def test_no_previews_without_the_flag(tmp_path, photos, fake):
    out = tmp_path / "out"
    assert cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
               str(photos["face"]), "--out", str(out), "--server", fake.url) == 0
    assert "extra_data" not in fake.prompts[0]
    assert not (out / "previews").exists()


def test_couple_workflow_takes_two_faces_in_order(tmp_path, photos, fake, capsys):
    wf = workflow(tmp_path, faces=2)
    out = tmp_path / "out"
    rc = cli("run", "--workflow", str(wf), "--reference", str(photos["ref"]), "--face", str(photos["face"]),
             "--out", str(out), "--server", fake.url)
    assert rc == 2 and "takes 2 face photo(s)" in capsys.readouterr().err
    assert fake.prompts == []
    assert cli("run", "--workflow", str(wf), "--reference", str(photos["ref"]), "--face", str(photos["face"]),
               "--face", str(photos["face2"]), "--out", str(out), "--server", fake.url) == 0
    prompt = fake.prompts[0]["prompt"]
    assert prompt["2"]["inputs"]["image"] == "i2p_cli/face.jpg"
    assert prompt["6"]["inputs"]["image"] == "i2p_cli/face2.jpg"


def test_ui_format_file_is_converted_with_object_info(tmp_path, photos, fake):
    ui = {"last_node_id": 3, "last_link_id": 2, "nodes": [
        {"id": 1, "type": "LoadImage", "title": "Reference photo", "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}, {"name": "MASK", "type": "MASK", "links": []}],
         "widgets_values": ["example.png", "image"]},
        {"id": 2, "type": "LoadImage", "title": "Face photo", "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}, {"name": "MASK", "type": "MASK", "links": []}],
         "widgets_values": ["example.png"]},
        {"id": 3, "type": "SaveImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
         "widgets_values": ["from_ui"]},
        {"id": 4, "type": "Note", "inputs": [], "outputs": [], "widgets_values": ["a note"]}],
        "links": [[1, 1, 0, 3, 0, "IMAGE"]]}
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(ui))
    out = tmp_path / "out"
    assert cli("run", "--workflow", str(path), "--reference", str(photos["ref"]), "--face", str(photos["face"]),
               "--out", str(out), "--server", fake.url) == 0
    prompt = fake.prompts[0]["prompt"]
    assert set(prompt) == {"1", "2", "3"}
    assert prompt["3"]["inputs"] == {"filename_prefix": "from_ui", "images": ["1", 0]}


# ----------------------------------------------------------------------------------------- failures
def test_validation_errors_are_printed_as_comfyui_reports_them(tmp_path, photos, fake, capsys):
    wf = workflow(tmp_path, **{"3__blend_factor": 5.0, "3__blend_mode": "sparkle"})
    out = tmp_path / "out"
    rc = cli("run", "--workflow", str(wf), "--reference", str(photos["ref"]), "--face", str(photos["face"]),
             "--out", str(out), "--server", fake.url)
    err = capsys.readouterr().err
    assert rc == 1
    assert len(fake.rejected) == 1 and fake.prompts == []
    assert "ComfyUI rejected the workflow: Prompt outputs failed validation" in err
    assert "node 3 'Blend' (ImageBlend):" in err
    assert "value_bigger_than_max: Value 5.0 bigger than max of 1.0: blend_factor" in err
    assert "value_not_in_list: Value not in list: blend_mode: 'sparkle' not in" in err
    assert summary(out)[0]["status"] == "rejected"


def test_unknown_node_type_is_reported(tmp_path, photos, fake, capsys):
    path = workflow(tmp_path)
    wf = json.loads(path.read_text())
    wf["3"]["class_type"] = "NoSuchNode"
    path.write_text(json.dumps(wf))
    rc = cli("run", "--workflow", str(path), "--reference", str(photos["ref"]), "--face", str(photos["face"]),
             "--out", str(tmp_path / "out"), "--server", fake.url)
    assert rc == 1
    assert "Node 'Blend' not found. The custom node may not be installed." in capsys.readouterr().err


def test_execution_error_names_the_node_and_its_message(tmp_path, photos, capsys):
    out = tmp_path / "out"
    with FakeComfyUI(fail_class="ImageBlend") as server:
        rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
                 str(photos["face"]), "--out", str(out), "--server", server.url, "--verbose")
    err = capsys.readouterr().err
    assert rc == 1
    assert "node 3 'Blend' (ImageBlend) failed: ValueError: [ImageBlend] fake failure" in err
    assert 'File "fake.py"' in err  # --verbose prints ComfyUI's traceback
    [result] = summary(out)
    assert result["status"] == "failed" and result["outputs"] == []


def test_interrupted_prompt_is_reported(tmp_path, photos, capsys):
    out = tmp_path / "out"
    with FakeComfyUI(interrupt_class="ImageBlend") as server:
        rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
                 str(photos["face"]), "--out", str(out), "--server", server.url)
    assert rc == 1
    assert "interrupted at node 3 'Blend' (ImageBlend)" in capsys.readouterr().err
    assert summary(out)[0]["status"] == "interrupted"


def test_no_server_answering(tmp_path, photos, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
             str(photos["face"]), "--out", str(tmp_path / "out"), "--server", f"127.0.0.1:{port}")
    assert rc == 2
    assert "no ComfyUI answers" in capsys.readouterr().err


def test_missing_input_file_and_unknown_workflow(tmp_path, photos, fake, capsys):
    rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(tmp_path / "nope.jpg"), "--face",
             str(photos["face"]), "--out", str(tmp_path / "out"), "--server", fake.url)
    assert rc == 2 and "nope.jpg does not exist" in capsys.readouterr().err
    rc = cli("run", "--workflow", "no_such_workflow", "--reference", str(photos["ref"]), "--face",
             str(photos["face"]), "--out", str(tmp_path / "out"), "--server", fake.url)
    assert rc == 2 and "no workflow 'no_such_workflow'" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- batch
def _batch_folder(root: Path, photos: dict, n: int) -> Path:
    folder = root / "batch"
    for i in range(n):
        job = folder / f"job{i}"
        job.mkdir(parents=True)
        (job / "reference.jpg").write_bytes(photos["ref"].read_bytes())
        (job / "face.jpg").write_bytes(photos["face"].read_bytes())
    return folder


def test_batch_survives_a_server_that_disappears(tmp_path, photos, capsys):
    folder = _batch_folder(tmp_path, photos, 5)
    out = tmp_path / "out"
    with FakeComfyUI(die_after=1) as dying, FakeComfyUI() as healthy:
        rc = cli("run", "--workflow", str(workflow(tmp_path)), "--batch", str(folder), "--seed", "3",
                 "--out", str(out), "--server", dying.url, "--server", healthy.url)
        assert dying.dead
    err = capsys.readouterr().err
    assert rc == 0, err
    results = summary(out)
    assert sorted(r["job"] for r in results) == [f"job{i}" for i in range(5)]
    assert all(r["status"] == "ok" and len(r["outputs"]) == 1 for r in results)
    retried = [r for r in results if r["attempts"] > 1]
    assert retried and all(r["server"] == healthy.url for r in retried)
    assert "retrying on another server" in err
    assert "summary: 5 ok of 5 job(s)" in err
    assert len(dying.prompts) >= 2  # it took jobs before it vanished


def test_batch_gives_up_when_every_server_is_gone(tmp_path, photos, capsys):
    folder = _batch_folder(tmp_path, photos, 2)
    out = tmp_path / "out"
    run_batch = pack_module("cli.batch").run_batch
    jobs = pack_module("cli.batch").load_jobs(folder)
    client = pack_module("cli.comfy_client").ComfyClient
    wf = json.loads(workflow(tmp_path).read_text())
    with FakeComfyUI(die_after=0) as dying:
        results = run_batch(jobs, [client(dying.url)], wf, out, retries=1, log=lambda m: None, progress=False)
    assert [r.job for r in results] == ["job0", "job1"]
    assert all(r.status in ("failed", "lost") for r in results), [r.status for r in results]
    assert any("no ComfyUI server left" in r.message or "not answering" in r.message for r in results)


def test_batch_from_csv_with_names_seeds_and_two_faces(tmp_path, photos, fake):
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["reference", "face", "face2", "name", "seed"])
        w.writerow([photos["ref"].name, photos["face"].name, photos["face2"].name, "alice_bob", "11"])
        w.writerow([photos["ref"].name, photos["face2"].name, photos["face"].name, "", ""])
    out = tmp_path / "out"
    assert cli("run", "--workflow", str(workflow(tmp_path, faces=2)), "--batch", str(path), "--seed", "100",
               "--out", str(out), "--server", fake.url) == 0
    results = {r["job"]: r for r in summary(out)}
    assert set(results) == {"alice_bob", "row002"}
    by_seed = {p["prompt"]["5"]["inputs"]["noise_seed"]: p["prompt"] for p in fake.prompts}
    assert set(by_seed) == {11, 100}
    assert by_seed[100]["2"]["inputs"]["image"].endswith("face2.jpg")
    assert by_seed[100]["6"]["inputs"]["image"].endswith("face.jpg")


def test_flat_folder_naming(tmp_path, photos):
    batch = pack_module("cli.batch")
    folder = tmp_path / "flat"
    folder.mkdir()
    for job in ("a", "b"):
        (folder / f"{job}_reference.jpg").write_bytes(photos["ref"].read_bytes())
        (folder / f"{job}_face.jpg").write_bytes(photos["face"].read_bytes())
    (folder / "c_reference.jpg").write_bytes(photos["ref"].read_bytes())  # no face: an error
    with pytest.raises(batch.BatchInputError, match="job 'c' has no face"):
        batch.load_jobs(folder)
    (folder / "c_reference.jpg").unlink()
    jobs = batch.load_jobs(folder, count=2, seed=5)
    assert [(j.name, j.seed) for j in jobs] == [("a_01", 5), ("a_02", 6), ("b_01", 5), ("b_02", 6)]


# ------------------------------------------------------------------------------- private ComfyUI
def test_private_comfyui_is_started_and_stopped(tmp_path, photos, capsys):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from fake_comfyui import main
        main(sys.argv[1:])
    """))
    out = tmp_path / "out"
    rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
             str(photos["face"]), "--out", str(out), "--comfyui", str(comfy), "--comfyui-python", sys.executable,
             "--comfyui-arg=--cpu")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "starting a private ComfyUI" in err and "--cpu" in err
    [result] = summary(out)
    assert result["status"] == "ok"
    port = int(result["server"].rsplit(":", 1)[1])
    with socket.socket() as s:  # stopped: nothing listens there any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_private_comfyui_that_fails_to_start(tmp_path, photos, capsys):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text("import sys\nprint('cannot import torch')\nsys.exit(3)\n")
    rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
             str(photos["face"]), "--out", str(tmp_path / "out"), "--comfyui", str(comfy),
             "--comfyui-python", sys.executable)
    err = capsys.readouterr().err
    assert rc == 1
    assert "exited while starting" in err and "cannot import torch" in err


# ----------------------------------------------------------------------------------------- pieces
def test_preview_frames_of_both_kinds():
    parse = pack_module("cli.comfy_client").parse_preview
    jpeg = jpeg_bytes()
    old = parse(struct.pack(">II", 1, 1) + jpeg)
    assert old.mime == "image/jpeg" and old.data == jpeg and old.suffix == ".jpg"
    png = parse(struct.pack(">II", 1, 2) + b"PNGDATA")
    assert png.mime == "image/png" and png.data == b"PNGDATA"
    meta = json.dumps({"node_id": "7", "image_type": "image/png"}).encode()
    new = parse(struct.pack(">II", 4, len(meta)) + meta + b"IMG")
    assert new.node == "7" and new.mime == "image/png" and new.data == b"IMG"
    assert parse(struct.pack(">I", 3) + b"text") is None


def test_image_slot_convention():
    io_ = pack_module("cli.workflow_io")
    titled = {"9": {"class_type": "LoadImage", "inputs": {"image": "a"}, "_meta": {"title": "Face photo 2"}},
              "3": {"class_type": "LoadImage", "inputs": {"image": "a"}, "_meta": {"title": "Reference photo"}},
              "5": {"class_type": "LoadImage", "inputs": {"image": "a"}, "_meta": {"title": "Face photo"}}}
    assert io_.image_slots(titled) == {"reference": "3", "face1": "5", "face2": "9"}
    untitled = {"12": {"class_type": "LoadImage", "inputs": {"image": "a"}},
                "4": {"class_type": "LoadImage", "inputs": {"image": "a"}}}
    assert io_.image_slots(untitled) == {"reference": "4", "face1": "12"}
    with pytest.raises(ValueError, match="takes 2 face photo"):
        io_.fill(titled, "r.png", ["f.png"], 1)


def test_bundled_workflows_are_found_by_name():
    io_ = pack_module("cli.workflow_io")
    names = io_.bundled_names()
    if not names:
        pytest.skip("no bundled API workflows yet")
    assert io_.find_workflow(names[0].replace("_", "-")) == io_.API_DIR / f"{names[0]}.json"


def test_ctrl_c_interrupts_our_prompt_and_returns(tmp_path, photos, fake):
    batch = pack_module("cli.batch")
    client = pack_module("cli.comfy_client").ComfyClient
    jobs = [batch.Job("one", photos["ref"], [photos["face"]], 1)]
    wf = json.loads(workflow(tmp_path).read_text())
    fake.hold.clear()  # the prompt starts and then sits in its first node
    seen = {}

    def ctrl_c_once_running() -> None:
        deadline = time.monotonic() + 20
        while not fake.running and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["prompt_id"] = fake.running[0][1]
        _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt in the main thread

    threading.Thread(target=ctrl_c_once_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(jobs, [client(fake.url)], wf, tmp_path / "out", log=lambda m: None, progress=False)
    fake.hold.set()
    # a targeted interrupt: other users' prompts on that server are left alone
    assert fake.interrupts == [{"prompt_id": seen["prompt_id"]}]


# ---------------------------------------------------------------------------------- real ComfyUI
@pytest.mark.comfyui
def test_real_comfyui_rejection_is_printed_node_by_node(tmp_path, photos, comfyui_server, capsys):
    """The same CLI against the real server: uploads land, and a bad value comes back as ComfyUI's
    own node_errors, printed per node (no model is loaded for this)."""
    out = tmp_path / "out"
    wf = workflow(tmp_path, **{"3__blend_factor": 5.0})
    rc = cli("run", "--workflow", str(wf), "--reference", str(photos["ref"]), "--face", str(photos["face"]),
             "--out", str(out), "--server", comfyui_server.url)
    err = capsys.readouterr().err
    assert rc == 1
    assert "node 3 'Blend' (ImageBlend):" in err
    assert "value_bigger_than_max: Value 5.0 bigger than max of 1.0: blend_factor" in err


@pytest.mark.comfyui
def test_real_comfyui_core_workflow_runs(tmp_path, photos, comfyui_server):
    out = tmp_path / "out"
    assert cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
               str(photos["face"]), "--seed", "5", "--out", str(out), "--server", comfyui_server.url) == 0
    [result] = summary(out)
    assert result["status"] == "ok" and len(result["outputs"]) == 1
    with Image.open(result["outputs"][0]) as im:
        assert im.size == (48, 48)


@pytest.mark.parametrize("name", ["recommended_portrait", "fast_swap", "couple_photo", "auto_prompt", "pre_paste"])
def test_bundled_workflow_by_name_through_the_fake(name, tmp_path, photos, fake):
    """Each shipped API workflow passes the fake's ComfyUI validation (the pack's real node schemas)
    once the CLI has filled in the photos, and its saved image comes back."""
    faces = [photos["face"], photos["face2"]] if name == "couple_photo" else [photos["face"]]
    argv = ["run", "--workflow", name.replace("_", "-"), "--reference", str(photos["ref"]), "--seed", "9",
            "--out", str(tmp_path / "out"), "--server", fake.url]
    for f in faces:
        argv += ["--face", str(f)]
    assert cli(*argv) == 0, fake.rejected
    [result] = summary(tmp_path / "out")
    assert result["status"] == "ok" and len(result["outputs"]) == 1
    prompt = fake.prompts[0]["prompt"]
    images = sorted(n["inputs"]["image"] for n in prompt.values() if n["class_type"] == "LoadImage")
    assert images == sorted(f"i2p_cli/{p.name}" for p in [photos["ref"], *faces])
    assert any(k.endswith("/ text") for k in result["texts"])  # the identity score's text came back


def test_private_comfyui_gets_cpu_only_where_there_is_no_gpu_tool(monkeypatch):
    local = pack_module("cli.local_comfyui")
    monkeypatch.setattr(local.sys, "platform", "linux")
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    assert local.needs_cpu_flag([]) is True
    assert local.needs_cpu_flag(["--cpu"]) is False
    assert local.needs_cpu_flag(["--directml=0"]) is False
    monkeypatch.setattr(local.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert local.needs_cpu_flag([]) is False
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    monkeypatch.setattr(local.sys, "platform", "darwin")
    assert local.needs_cpu_flag([]) is False


@pytest.mark.comfyui
def test_real_private_comfyui_is_started_and_stopped(tmp_path, photos):
    """--comfyui with the real ComfyUI: started on a free loopback port, used, stopped (a base
    directory of its own keeps the checkout clean; no model is needed for this core graph)."""
    out = tmp_path / "out"
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    rc = cli("run", "--workflow", str(workflow(tmp_path)), "--reference", str(photos["ref"]), "--face",
             str(photos["face"]), "--out", str(out), "--comfyui", os.environ["COMFYUI_PATH"],
             "--comfyui-python", sys.executable, f"--comfyui-arg=--base-directory={base}",
             f"--comfyui-arg=--database-url=sqlite:///{base / 'comfyui.db'}",
             "--comfyui-arg=--cpu", "--comfyui-arg=--disable-api-nodes")
    [result] = summary(out)
    assert rc == 0, result["message"]
    assert result["status"] == "ok" and len(result["outputs"]) == 1
    assert list((base / "output").rglob("*.png"))  # ComfyUI really wrote it, in our base directory
    port = int(result["server"].rsplit(":", 1)[1])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
