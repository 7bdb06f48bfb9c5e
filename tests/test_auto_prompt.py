"""I2P Auto Prompt (Gemini) against a fake Gemini REST server on 127.0.0.1 (tests/fake_gemini.py)."""
from __future__ import annotations

import io
import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fake_gemini import FakeGemini, closed_port_url
from packload import load_pack, pack_module

KEY = "AIzaFAKE-test-key-0123456789abcdefghijkl"  # shaped like a real key, so redaction is exercised


@pytest.fixture
def ap():
    return pack_module("core.prompt.auto_prompt")


@pytest.fixture
def env(monkeypatch, tmp_path, ap):
    """No key anywhere, a private user folder, an empty memory cache."""
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("I2P_USER_DIR", str(tmp_path / "user"))
    ap.CACHE.clear_memory()
    yield tmp_path / "user"
    ap.CACHE.clear_memory()


@pytest.fixture
def server(env, monkeypatch):
    with FakeGemini(api_key=KEY) as srv:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", srv.url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield srv


def node():
    return load_pack().NODE_CLASS_MAPPINGS["I2PAutoPromptGemini"]()


def face_image(seed: int = 0, size: int = 96) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((1, size, size, 3), dtype=np.float32))


def run(image=None, **overrides):
    args = dict(face_image=face_image() if image is None else image, style_hint="", model="gemini-2.5-flash",
                temperature=0.4, prompt_seed=0, use_fallback=True, timeout_s=30, retries=0, cache_on_disk=True)
    args.update(overrides)
    return node().generate(**args)


# ------------------------------------------------------------------------------- request and format
def test_request_reaches_fake_server_in_real_format(server):
    out = run(style_hint="studio portrait, 85mm")
    positive, negative, description, status = out["result"]
    assert len(server.requests) == 1
    req = server.requests[0]
    # google-genai 3.4 posts to /v1/models/...; the fake also answers v1beta for other SDK versions
    assert req.api_version in ("v1", "v1beta"), req.path
    assert req.model == "gemini-2.5-flash"
    assert req.headers.get("x-goog-api-key") == KEY
    mime, data = req.images[0]
    assert mime == "image/png"
    assert Image.open(io.BytesIO(data)).size == (96, 96)
    assert "ethnicity" in json.dumps(req.body["systemInstruction"])
    assert req.body["generationConfig"]["temperature"] == pytest.approx(0.4)
    assert req.body["generationConfig"]["seed"] == 0
    assert "studio portrait, 85mm" in req.text_parts[-1]
    assert description.startswith("a photo of a woman in her 30s, shoulder-length brown hair")
    assert positive.startswith(description)
    assert "studio portrait, 85mm" in positive and "detailed skin" in positive
    assert "cartoon" in negative
    assert status.startswith("Gemini gemini-2.5-flash (1338 tokens)")
    assert status in out["ui"]["text"][0]


def test_sdk_itself_honours_base_url_env(server):
    """GOOGLE_GEMINI_BASE_URL redirects the SDK even without an explicit base_url."""
    from google import genai

    with genai.Client(api_key=KEY) as client:
        reply = client.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert reply.text.startswith("a photo of")
    assert len(server.requests) == 1


def test_reference_image_is_sent_second_with_lighting_instruction(server):
    ref = torch.zeros(1, 40, 60, 3)
    run(reference_image=ref)
    req = server.requests[0]
    assert len(req.images) == 2
    assert Image.open(io.BytesIO(req.images[1][1])).size == (60, 40)
    assert "lighting as it is in that scene" in req.text_parts[-1]


def test_large_face_image_is_downscaled_for_upload(server):
    run(image=torch.rand(1, 1500, 1200, 3))
    w, h = Image.open(io.BytesIO(server.requests[0].images[0][1])).size
    assert max(w, h) == 1024 and (w, h) == (819, 1024)


# -------------------------------------------------------------------------------------------- cache
def test_requeue_hits_cache_and_seed_asks_for_a_fresh_one(server, env, ap):
    first = run()["result"]
    again = run()["result"]
    assert len(server.requests) == 1
    assert again[:3] == first[:3]
    assert "cached: no API call" in again[3]
    run(prompt_seed=7)
    assert len(server.requests) == 2
    assert server.requests[1].body["generationConfig"]["seed"] == 7
    run(style_hint="film grain")
    run(temperature=0.9)
    run(model="gemini-2.5-pro")
    run(image=face_image(seed=1))
    assert len(server.requests) == 6
    # timeout and retries do not change the answer, so they do not change the key
    run(timeout_s=99, retries=1)
    assert len(server.requests) == 6
    # the disk cache survives a restart (memory cleared)
    ap.CACHE.clear_memory()
    assert "cached" in run()["result"][3]
    assert len(server.requests) == 6
    files = list((env / "__ip_to_portrait" / "gemini_cache").glob("*.json"))
    assert len(files) == 6
    assert not list((env / "__ip_to_portrait" / "gemini_cache").glob(".tmp-*"))


def test_cache_on_disk_off_writes_nothing(server, env):
    run(cache_on_disk=False)
    assert not (env / "__ip_to_portrait" / "gemini_cache").exists()


def test_fallback_results_are_not_cached(server):
    server.reply_error(503)
    assert "FALLBACK" in run()["result"][3]
    server.reply_text("a photo of a man in his 40s, short grey hair")
    positive = run()["result"][0]
    assert positive.startswith("a photo of a man in his 40s")
    assert len(server.requests) == 2


def test_is_changed(server):
    cls = type(node())
    widgets = dict(style_hint="", model="gemini-2.5-flash", temperature=0.4, prompt_seed=0, use_fallback=True,
                   timeout_s=30, retries=0, cache_on_disk=True)
    a = cls.IS_CHANGED(**widgets)
    assert cls.IS_CHANGED(**widgets) == a
    assert cls.IS_CHANGED(**{**widgets, "prompt_seed": 1}) != a
    run()  # success: nothing changes
    assert cls.IS_CHANGED(**widgets) == a
    server.reply_error(429)
    run(prompt_seed=3)  # a fallback: the next queue must retry Gemini
    assert cls.IS_CHANGED(**widgets) != a
    assert KEY not in str(cls.IS_CHANGED(**widgets))


# ------------------------------------------------------------------------------------- error cases
def _set_case(server, monkeypatch, case):
    if case == "429":
        server.reply_error(429, "Resource has been exhausted (e.g. check quota).")
    elif case == "500":
        server.reply_error(500, "An internal error has occurred.")
    elif case == "503":
        server.reply_error(503, "The model is overloaded. Please try again later.")
    elif case == "blocked":
        server.reply_blocked_prompt("PROHIBITED_CONTENT")
    elif case == "finish_safety":
        server.reply_finish_safety()
    elif case == "no_candidates":
        server.reply_no_candidates()
    elif case == "timeout":
        server.reply_delay(10)
    elif case == "refused":
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", closed_port_url())
    elif case == "no_key":
        monkeypatch.delenv("GEMINI_API_KEY")
    elif case == "bad_key":
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaWRONG-key-000000000000000000000000")
    elif case == "html_200":
        server.reply_raw(200, b"<html><body>proxy login required</body></html>")
    elif case == "model_404":
        server.reply_error(404, "models/gemini-9 is not found for API version v1.")


CASES = {  # case -> (words expected in the message, input the error names)
    "429": (("429", "RESOURCE_EXHAUSTED"), "retries"),
    "500": (("500", "INTERNAL"), "retries"),
    "503": (("503", "UNAVAILABLE", "overloaded"), "retries"),
    "blocked": (("blocked", "PROHIBITED_CONTENT"), "face_image"),
    "finish_safety": (("safety", "SAFETY"), "face_image"),
    "no_candidates": (("no candidates",), "prompt_seed"),
    "timeout": (("did not answer in time",), "timeout_s"),
    "refused": (("could not reach Gemini",), None),
    "no_key": (("no Gemini API key", "gemini.json"), None),
    "bad_key": (("API key not valid",), None),
    "model_404": (("404", "NOT_FOUND"), "model"),
    "html_200": (("could not be used", "JSONDecodeError"), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_failure_falls_back_to_local_template(server, monkeypatch, case):
    _set_case(server, monkeypatch, case)
    positive, negative, description, status = run(timeout_s=1)["result"]
    assert status.startswith("FALLBACK local template (no face attributes connected)")
    assert "use_fallback" not in status  # it is on: no advice to turn it on
    for word in CASES[case][0]:
        assert word in status, (word, status)
    assert "Fix:" in status
    assert description == "a photo of a person"
    assert positive.startswith("a photo of a person, detailed skin, natural lighting")
    assert negative


@pytest.mark.parametrize("case", sorted(CASES))
def test_failure_without_fallback_is_a_clear_error(server, monkeypatch, case):
    I2PError = pack_module("core.errors").I2PError
    _set_case(server, monkeypatch, case)
    with pytest.raises(I2PError) as info:
        run(timeout_s=1, use_fallback=False)
    err = info.value
    text = str(err)
    assert text.startswith("[I2P Auto Prompt (Gemini)]")
    assert err.input_name == CASES[case][1]
    assert err.fix and "Fix:" in text
    for word in CASES[case][0]:
        assert word in text, (word, text)
    # no chained SDK exception: the editor shows our message, not a traceback from httpx or google.genai
    assert err.__cause__ is None and err.__suppress_context__
    assert "httpx" not in text and "Traceback" not in text


def test_retries_use_the_sdk_retry(server, ap):
    server.queue([FakeGemini.error(503), FakeGemini.error(429)])
    settings = ap.Settings(retries=2, timeout_s=10)
    result = ap.generate_prompt(np.zeros((64, 64, 3), np.uint8), settings, retry_delay_s=0.01)
    assert result.source == "gemini"
    assert len(server.requests) == 3


def test_invalid_model_name_is_rejected_before_any_request(server):
    I2PError = pack_module("core.errors").I2PError
    with pytest.raises(I2PError) as info:
        run(model="https://evil.example/v1 x")
    assert info.value.input_name == "model"
    assert server.requests == []


# ------------------------------------------------------------------------------------------ the key
def test_key_from_user_folder_file(server, monkeypatch, env):
    monkeypatch.delenv("GEMINI_API_KEY")
    path = env / "__ip_to_portrait" / "gemini.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"api_key": KEY}))
    assert run()["result"][3].startswith("Gemini ")
    assert server.requests[0].headers["x-goog-api-key"] == KEY


def test_unreadable_key_file_is_reported_without_its_content(server, monkeypatch, env):
    monkeypatch.delenv("GEMINI_API_KEY")
    path = env / "__ip_to_portrait" / "gemini.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"api_key": "' + KEY + '"')  # truncated JSON
    status = run()["result"][3]
    assert "not readable JSON" in status and KEY not in status
    assert server.requests == []


def test_env_key_wins_over_file_with_sdk_precedence(server, monkeypatch, env, ap):
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-var")
    assert ap.find_api_key() == ("from-google-var", "$GOOGLE_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY")
    assert ap.find_api_key() == (KEY, "$GEMINI_API_KEY")


def test_key_never_leaves_the_request_header(server, monkeypatch, env, caplog):
    """Outputs, ui text, IS_CHANGED values, exception messages, cache keys and files, and every log
    line (all loggers, DEBUG) are free of the key, in success and failure, even when the server
    echoes the key back in its error message."""
    caplog.set_level(logging.DEBUG)
    I2PError = pack_module("core.errors").I2PError
    cls = type(node())
    seen: list[str] = []
    seen.append(repr(run()))
    seen.append(repr(run()))  # cached
    server.reply_error(400, f"API key {KEY} expired. Please renew the API key.")
    seen.append(repr(run(prompt_seed=1)))
    with pytest.raises(I2PError) as info:
        run(prompt_seed=2, use_fallback=False)
    seen.append(str(info.value))
    seen.append(repr(info.value.args))
    server.reply_error(429)
    seen.append(repr(run(prompt_seed=3)))
    server.reply_blocked_prompt()
    seen.append(repr(run(prompt_seed=4)))
    seen.append(str(cls.IS_CHANGED(style_hint="", model="gemini-2.5-flash", temperature=0.4, prompt_seed=0,
                                   use_fallback=True, timeout_s=30, retries=0, cache_on_disk=True)))
    ap = pack_module("core.prompt.auto_prompt")
    seen.append(repr(list(ap.CACHE._mem.items())))
    for f in (env / "__ip_to_portrait" / "gemini_cache").glob("*"):
        seen.append(f.name + f.read_text())
    seen.append(caplog.text)
    seen.extend(r.getMessage() for r in caplog.records)
    assert len(server.requests) == 5  # the key really was in use
    assert "***" in seen[3]  # the echoed key was redacted, not dropped with the message
    for text in seen:
        assert KEY not in text
    assert caplog.records, "the capture saw nothing: the check above would be empty"


# ------------------------------------------------------------------------------ ethnicity filtering
@pytest.mark.parametrize("raw,expected", [
    ("a photo of an Asian woman in her 20s, black hair", "a photo of a woman in her 20s, black hair"),
    ("a photo of a Caucasian man, blue eyes", "a photo of a man, blue eyes"),
    ("A photo of an East Asian elderly man", "A photo of an elderly man"),
    ("a photo of a woman of South Asian descent, olive skin", "a photo of a woman, olive skin"),
    ("a photo of a black woman with black hair, dark skin", "a photo of a woman with black hair, dark skin"),
    ("a photo of a Hispanic-looking man, Latino features, tan skin", "a photo of a man, features, tan skin"),
    ("a photo of a young African-American man", "a photo of a young man"),
    ("a photo of a woman in a white shirt, white background", "a photo of a woman in a white shirt, white background"),
])
def test_remove_ethnicity_labels(ap, raw, expected):
    text, removed = ap.remove_ethnicity_labels(raw)
    assert text == expected
    assert bool(removed) == (raw != expected)


def test_gemini_text_with_ethnicity_labels_is_filtered_end_to_end(server):
    server.reply_text("Prompt: \"a photo of an Asian woman of Korean heritage, in her 20s, black bob haircut, "
                      "light skin, round face, detailed skin, natural lighting\"")
    positive, _, description, status = run()["result"]
    for word in ("Asian", "Korean", "heritage"):
        assert word not in positive and word not in description
    assert description.startswith("a photo of a woman, in her 20s, black bob haircut")
    assert "removed ethnicity labels" in status and "asian" in status


# ------------------------------------------------------------------------------- local attributes
@pytest.mark.parametrize("rgb,name", [
    ((20, 18, 16), "black"), ((60, 40, 28), "dark brown"), ((110, 75, 45), "brown"),
    ((160, 120, 80), "light brown"), ((220, 190, 130), "blonde"), ((235, 225, 200), "platinum blonde"),
    ((190, 90, 40), "red"), ((120, 50, 30), "auburn"), ((150, 150, 150), "grey"), ((240, 240, 235), "white"),
    ((40, 60, 200), "blue"), ((220, 80, 170), "pink"),
])
def test_hair_colour_names(ap, rgb, name):
    assert ap.hair_colour_name(rgb) == name


def test_fallback_template_uses_face_attributes_and_hair_mask(env):
    ft = pack_module("core.faces.types")
    img = np.full((1, 80, 80, 3), 0.3, np.float32)
    img[0, :30] = np.array([220, 190, 130]) / 255.0  # blonde top band
    mask = torch.zeros(1, 40, 40)  # half resolution: resized to the image
    mask[0, :15] = 1.0
    face = ft.Face(bbox=np.array([10, 10, 70, 70], np.float32), kps=np.zeros((5, 2), np.float32), det_score=0.9,
                   gender="female", age=34)
    faces = ft.Faces(sets=[ft.FaceSet(image_size=(80, 80), faces=[face])])
    positive, _, description, status = run(image=torch.from_numpy(img), faces=faces, hair_mask=mask)["result"]
    assert description == "a photo of a woman in her 30s, blonde hair"
    assert positive == "a photo of a woman in her 30s, blonde hair, detailed skin, natural lighting, sharp focus, photorealistic"
    assert status.startswith("FALLBACK local template (gender, age, hair colour)")
    assert "no Gemini API key" in status


@pytest.mark.parametrize("gender,age,phrase", [
    ("male", 47, "man in his 40s"), ("female", 16, "teenage girl"), (None, 8, "child"), (None, None, "person"),
    ("male", None, "man"), (None, 25, "person in their 20s"),
])
def test_person_phrase(ap, gender, age, phrase):
    assert ap.person_phrase(gender, age) == phrase


def test_compose_positive_keeps_gemini_lighting(ap):
    p = ap.compose_positive("a photo of a man, soft window light, detailed skin", "")
    assert p == "a photo of a man, soft window light, detailed skin, sharp focus, photorealistic"
    assert ap.compose_positive("woman, red hair", "cinematic").startswith("a photo of woman, red hair, cinematic")


def test_cache_lru_and_disk_pruning(ap, tmp_path):
    cache = ap.PromptCache(max_entries=2, max_files=3)
    for i in range(5):
        cache.put(f"k{i}", {"description": f"d{i}"}, tmp_path)
        os.utime(tmp_path / f"k{i}.json", (1000 + i, 1000 + i))  # distinct mtimes, oldest first
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["k2", "k3", "k4"]
    assert list(cache._mem) == ["k3", "k4"]
    assert cache.get("k1", tmp_path) is None  # evicted from memory and pruned from disk
    assert cache.get("k2", tmp_path)["description"] == "d2"  # from disk, back into memory
    assert list(cache._mem) == ["k4", "k2"]
    (tmp_path / "k3.json").write_text("{not json")
    cache.clear_memory()
    assert cache.get("k3", tmp_path) is None  # a damaged file is a miss, not a crash


def test_unwritable_cache_folder_costs_only_the_disk_cache(server, env):
    (env / "__ip_to_portrait").mkdir(parents=True)
    (env / "__ip_to_portrait" / "gemini_cache").write_text("a file where the folder should be")
    assert run()["result"][3].startswith("Gemini ")
    assert "cached" in run()["result"][3]  # the memory cache still works
    assert len(server.requests) == 1


def test_faces_from_another_image_are_not_used_for_the_template(env):
    ft = pack_module("core.faces.types")
    face = ft.Face(bbox=np.array([10, 10, 70, 70], np.float32), kps=np.zeros((5, 2), np.float32), det_score=0.9,
                   gender="male", age=52)
    faces = ft.Faces(sets=[ft.FaceSet(image_size=(512, 640), faces=[face])])
    _, _, description, status = run(image=torch.rand(2, 80, 80, 3), faces=faces)["result"]
    assert description == "a photo of a person"
    assert "faces ignored: detected on a 640x512 image, face_image is 80x80" in status
    assert "described the first of 2 images" in status
