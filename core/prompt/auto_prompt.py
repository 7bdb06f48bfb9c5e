"""Auto prompt: Gemini describes the face photo as an SDXL inpaint prompt; a local template stands in
when Gemini cannot.

Three promises shape this module:

- The API key is looked up at run time (environment, then a file in ComfyUI's user folder) and goes
  nowhere but the request header: not into outputs, messages, logs, cache keys or cache files.
  Workflows and PNG metadata hold widget values only, so the key is never a widget.
- A description is cached by image content and settings (memory LRU + JSON files in the user folder),
  so re-queuing a graph, or coming back to earlier settings, does not call the API again.
- The text describes what is visible and does not label ethnicity: the instruction says so, and
  :func:`remove_ethnicity_labels` strips the labels that slip through anyway.
"""
from __future__ import annotations

import colorsys
import hashlib
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import comfy_adapter
from . import gemini_client
from ..errors import I2PError
from ..paths import display
from .gemini_client import GeminiFailure
from .cache import PromptCache

log = logging.getLogger("ip_to_portrait.auto_prompt")

NODE_NAME = "I2P Auto Prompt (Gemini)"
DEFAULT_MODEL = "gemini-2.5-flash"
PROMPT_VERSION = 1  # part of every cache key: changing the instruction invalidates old answers
KEY_ENV_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # the SDK's own precedence
PRIVATE_DIR = "__ip_to_portrait"  # ComfyUI never serves "__"-prefixed user folders over HTTP
MAX_UPLOAD_SIDE = 1024
MAX_DESCRIPTION_CHARS = 600

SYSTEM_INSTRUCTION = (
    "You write short, factual prompts for a photo-realistic image generator. Describe only what is "
    "visible in the photo. Never state or guess ethnicity, race, nationality, religion or any other "
    "sensitive trait; describe skin tone with neutral words (fair, light, medium, olive, tan, brown, "
    "dark) instead. Never say who the person is."
)
USER_PROMPT = (
    "Describe the person in the first image as one line of comma-separated phrases, starting with "
    "'a photo of a'. Cover, where visible: apparent age (for example 'in her 30s'), hair colour and "
    "style, skin tone, face shape, expression, facial hair, glasses (or none), makeup, and the "
    "lighting. End with 'detailed skin, natural lighting'. At most 60 words. Output only the prompt."
)
REFERENCE_PROMPT = (
    " The second image is the scene this face will be placed into: describe the lighting as it is in "
    "that scene, not in the first image."
)
QUALITY_TAGS = ("detailed skin", "natural lighting", "sharp focus", "photorealistic")
NEGATIVE_PROMPT = (
    "cartoon, painting, illustration, drawing, 3d render, cgi, anime, deformed face, asymmetric eyes, "
    "blurry, lowres, jpeg artifacts, oversaturated, plastic skin, watermark, text"
)


# ------------------------------------------------------------------------------------ settings, result
@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    temperature: float = 0.4
    style_hint: str = ""
    seed: int = 0
    timeout_s: float = 30.0
    retries: int = 2


@dataclass
class AutoPrompt:
    positive: str
    negative: str
    description: str  # what Gemini (or the local template) said, after the ethnicity filter
    status: str  # one line: who produced the prompt and why
    source: str  # "gemini", "cache" or "fallback"
    cache_key: str | None = None


# ------------------------------------------------------------------------------------- text handling
_ETHNIC_TERMS = (
    "african american", "afro-american", "caucasian", "east asian", "south asian", "southeast asian",
    "asian", "african", "hispanic", "latino", "latina", "latinx", "middle eastern", "arab", "arabic",
    "native american", "indigenous", "pacific islander", "european", "mediterranean", "nordic",
    "scandinavian", "slavic", "indian", "chinese", "japanese", "korean", "vietnamese", "filipino",
    "filipina", "thai", "mixed-race", "mixed race", "biracial", "multiracial", "ethnically ambiguous",
    "ethnic",
)
_PERSON_NOUN = r"(?:man|woman|men|women|person|people|male|female|girl|boy|guy|lady|gentleman|adult|teen|teenager|child)"
_TERM_RE = re.compile(
    r"\b(?:(?P<art>an?)\s+)?(?P<term>"
    + "|".join(re.escape(t).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]+")
               for t in sorted(_ETHNIC_TERMS, key=len, reverse=True))
    + r"|(?:white|black)(?=[\s-]+" + _PERSON_NOUN + r"\b))(?:-[a-z]+)?\b[ \t]*(?P<next>\w?)",
    re.IGNORECASE,
)
_CLAUSE_RE = re.compile(
    r"(?:,\s*)?\b(?:of|with)\s+(?:[\w-]+\s+){0,3}?(?:descent|heritage|ancestry|origins?|ethnicity)\b",
    re.IGNORECASE,
)


def remove_ethnicity_labels(text: str) -> tuple[str, list[str]]:
    """``text`` without ethnicity labels, and the labels removed (lower case).

    Skin-tone words stay ("olive skin", "dark skin") and so do colours of things ("black hair").
    """
    removed: list[str] = []

    def clause(m: re.Match) -> str:
        removed.append(m.group(0).strip(" ,").lower())
        return ""

    def term(m: re.Match) -> str:
        removed.append(m.group("term").lower())
        nxt = m.group("next")
        art = m.group("art")
        if art:
            art = ("an" if nxt[:1].lower() in "aeiou" and nxt else "a")
            art = art.capitalize() if m.group("art")[0].isupper() else art
            return f"{art} {nxt}"
        return nxt

    text = _CLAUSE_RE.sub(clause, text)
    text = _TERM_RE.sub(term, text)
    return _tidy(text), sorted(set(removed))


def _tidy(text: str) -> str:
    """Collapse the gaps removal leaves: double spaces, empty comma segments, stray punctuation."""
    text = re.sub(r"[ \t]+", " ", text)
    parts = [p.strip(" .;:-") for p in text.split(",")]
    return ", ".join(p for p in parts if p)


def clean_description(raw: str) -> tuple[str, list[str]]:
    """Gemini's answer as one prompt line: no markdown, quotes or 'Prompt:' label, no ethnicity
    labels, at most :data:`MAX_DESCRIPTION_CHARS` (cut at a comma)."""
    text = raw.strip().strip("`").strip()
    text = re.sub(r"^(?:positive\s+)?prompt\s*:\s*", "", text, flags=re.IGNORECASE)
    text = ", ".join(line.strip(" *-\"'") for line in text.splitlines() if line.strip(" *-\"'"))
    text = text.strip("\"'")
    text, removed = remove_ethnicity_labels(text)
    if len(text) > MAX_DESCRIPTION_CHARS:
        cut = text.rfind(",", 0, MAX_DESCRIPTION_CHARS)
        text = text[: cut if cut > 0 else MAX_DESCRIPTION_CHARS].rstrip(" ,")
    return text, removed


def compose_positive(description: str, style_hint: str) -> str:
    """The seed's prompt shape: "a photo of a ..., <attributes>, <style hint>, detailed skin, natural
    lighting, ...", adding only the quality tags the description does not already have."""
    desc = description.strip(" ,")
    if not re.match(r"^(?:an?\s+)?(?:photo|portrait|close-up)", desc, re.IGNORECASE):
        desc = "a photo of " + desc
    parts = [desc]
    if style_hint.strip():
        parts.append(style_hint.strip(" ,"))
    low = ", ".join(parts).lower()
    for tag in QUALITY_TAGS:
        if tag == "natural lighting" and "light" in low:
            continue  # Gemini already described the light; do not contradict it
        if tag not in low:
            parts.append(tag)
    return ", ".join(parts)


# -------------------------------------------------------------------------------- local fallback
def hair_colour_name(rgb) -> str:
    """A plain colour word for a median hair colour (uint8 RGB)."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    h *= 360.0
    if v < 0.16:
        return "black"
    if s < 0.13:
        if v > 0.85:
            return "white"
        if v > 0.45:
            return "grey"
        return "dark grey" if v > 0.3 else "black"
    if 60 <= h < 330 and s > 0.25:  # hues hair has only when dyed
        return "green" if h < 170 else "blue" if h < 250 else "purple" if h < 290 else "pink"
    if v < 0.3:
        return "dark brown"
    if (h < 25 or h >= 330) and s > 0.45:
        return "auburn" if v < 0.55 else "red"
    if v < 0.5:
        return "brown"
    if v < 0.68:
        return "light brown"
    return "platinum blonde" if (s < 0.3 and v > 0.8) else "blonde"


def hair_colour(image: np.ndarray, hair_mask: np.ndarray | None, min_fraction: float = 0.002) -> str | None:
    """Colour name of the median hair pixel, or None when the mask has (almost) no hair."""
    if hair_mask is None:
        return None
    mask = np.asarray(hair_mask, dtype=np.float32)
    if mask.shape != image.shape[:2]:
        import cv2

        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    sel = mask > 0.5
    if sel.sum() < max(25, min_fraction * sel.size):
        return None
    return hair_colour_name(np.median(image[sel].reshape(-1, 3), axis=0))


def person_phrase(gender: str | None, age: int | None) -> str:
    """"woman in her 30s", "teenage boy", "person" from the analyzer's gender/age."""
    noun = {"female": "woman", "male": "man"}.get((gender or "").lower(), "person")
    if age is None:
        return noun
    age = int(age)
    if age < 13:
        return {"woman": "girl", "man": "boy"}.get(noun, "child")
    if age < 20:
        return {"woman": "teenage girl", "man": "teenage boy"}.get(noun, "teenager")
    pronoun = {"woman": "her", "man": "his"}.get(noun, "their")
    return f"{noun} in {pronoun} {min(age // 10 * 10, 90)}s"


def template_description(image: np.ndarray, face=None, hair_mask: np.ndarray | None = None) -> tuple[str, list[str]]:
    """What the local face attributes can say (gender and age from the analyzer, hair colour from the
    parsing mask), and which of them were available."""
    gender, age = getattr(face, "gender", None), getattr(face, "age", None)
    who = person_phrase(gender, age)
    article = "an" if who[0] in "aeiou" else "a"
    parts = [f"a photo of {article} {who}"]
    used = [name for name, value in (("gender", gender), ("age", age)) if value is not None]
    colour = hair_colour(image, hair_mask)
    if colour:
        parts.append(f"{colour} hair")
        used.append("hair colour")
    return ", ".join(parts), used


# --------------------------------------------------------------------------------------- API key
def private_dir() -> Path:
    """``<ComfyUI user dir>/__ip_to_portrait``: the key file and the cache live here."""
    return comfy_adapter.user_dir() / PRIVATE_DIR


def key_file() -> Path:
    return private_dir() / "gemini.json"


def find_api_key() -> tuple[str | None, str]:
    """(key, where it came from) or (None, why there is none). The second item never holds the key."""
    for var in KEY_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value, f"${var}"
    path = key_file()
    shown = display(path)  # 'user/__ip_to_portrait/gemini.json': no server path in node texts
    if not path.is_file():
        return None, f"no Gemini API key: neither {' nor '.join('$' + v for v in KEY_ENV_VARS)} is set and {shown} does not exist."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None, f"{shown} is not readable JSON."  # the parser's message may quote the file: not shown
    value = data.get("api_key") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None, f'{shown} has no "api_key" entry.'
    return value.strip(), shown


# ------------------------------------------------------------------------------------------- cache
def cache_key(face_image: np.ndarray, reference: np.ndarray | None, settings: Settings, model: str) -> str:
    """sha256 of the pixels and of the settings that change the answer (not timeout or retries, and
    never the key)."""
    h = hashlib.sha256(f"i2p-auto-prompt/{PROMPT_VERSION}".encode())
    for arr in (face_image, reference):
        if arr is None:
            h.update(b"|none")
        else:
            h.update(f"|{arr.shape}|{arr.dtype}|".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps({"model": model, "temperature": round(float(settings.temperature), 4),
                         "style_hint": settings.style_hint, "seed": int(settings.seed)}, sort_keys=True).encode())
    return h.hexdigest()


CACHE = PromptCache()
_fallbacks = 0  # runs that ended in the fallback; IS_CHANGED uses it so a re-queue retries Gemini


def fallback_count() -> int:
    return _fallbacks


def cache_dir() -> Path:
    return private_dir() / "gemini_cache"


# ------------------------------------------------------------------------------------------- run
_FIXES = {
    "no_key": ("set GEMINI_API_KEY (or GOOGLE_API_KEY) where ComfyUI starts, or write "
               '{"api_key": "..."} to %(key_file)s; or turn use_fallback on.'),
    "auth": "check the API key (aistudio.google.com/apikey) and that the Gemini API is enabled for it.",
    "not_found": "use a model id such as gemini-2.5-flash.",
    "bad_request": "check the model name and the images.",
    "rate_limit": "wait a minute or check your quota; a result that once succeeded is cached.",
    "server": "try again later, or raise 'retries'.",
    "timeout": "raise 'timeout_s' or check the connection.",
    "network": "check the internet connection, proxy or firewall (and $GOOGLE_GEMINI_BASE_URL if set).",
    "blocked": "use another face image; or turn use_fallback on.",
    "empty": "change prompt_seed or temperature and queue again.",
    "unexpected": "check $GOOGLE_GEMINI_BASE_URL or the proxy if one is set, else update google-genai.",
}
_INPUTS = {"not_found": "model", "bad_request": "model", "timeout": "timeout_s", "rate_limit": "retries",
           "server": "retries", "blocked": "face_image", "empty": "prompt_seed"}


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    pil = Image.fromarray(image)
    if max(pil.size) > MAX_UPLOAD_SIDE:
        pil.thumbnail((MAX_UPLOAD_SIDE, MAX_UPLOAD_SIDE), Image.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def _result(description: str, settings: Settings, status: str, source: str, key: str | None) -> AutoPrompt:
    return AutoPrompt(positive=compose_positive(description, settings.style_hint), negative=NEGATIVE_PROMPT,
                      description=description, status=status, source=source, cache_key=key)


def generate_prompt(face_image: np.ndarray, settings: Settings, *, reference_image: np.ndarray | None = None,
                    face=None, hair_mask: np.ndarray | None = None, use_fallback: bool = True,
                    disk_cache: bool = True, retry_delay_s: float = 2.0, node: str = NODE_NAME) -> AutoPrompt:
    """Cached Gemini description of ``face_image`` (uint8 RGB) as positive/negative prompts.

    On any Gemini failure: the local template from ``face`` (gender/age) and ``hair_mask`` when
    ``use_fallback``, else an :class:`I2PError` naming the fix.
    """
    global _fallbacks
    model = gemini_client.normalise_model_name(settings.model)
    if model is None:
        raise I2PError(node, "model", f"'{settings.model[:60]}' is not a Gemini model id.",
                       "use a model id such as gemini-2.5-flash.")
    key = cache_key(face_image, reference_image, settings, model)
    folder = cache_dir() if disk_cache else None
    entry = CACHE.get(key, folder)
    if entry is not None:
        return _result(entry["description"], settings, f"Gemini {model} (cached: no API call)", "cache", key)

    api_key, where = find_api_key()
    try:
        if api_key is None:
            raise GeminiFailure("no_key", where)
        comfy_adapter.check_interrupt()
        prompt = USER_PROMPT + (REFERENCE_PROMPT if reference_image is not None else "")
        if settings.style_hint.strip():
            prompt += f" The image will be styled as: {settings.style_hint.strip()} (do not repeat this)."
        images = [gemini_client.ImagePart(_png(face_image))]
        if reference_image is not None:
            images.append(gemini_client.ImagePart(_png(reference_image)))
        reply = gemini_client.generate(api_key=api_key, model=model, images=images, prompt=prompt,
                                       system_instruction=SYSTEM_INSTRUCTION, temperature=settings.temperature,
                                       seed=settings.seed, timeout_s=settings.timeout_s, retries=settings.retries,
                                       retry_delay_s=retry_delay_s)
        description, removed = clean_description(reply.text)
        if not description:
            raise GeminiFailure("empty", "Gemini's answer was empty after cleaning.")
    except GeminiFailure as failure:
        _fallbacks += 1
        message = gemini_client.redact(failure.message, api_key)
        fix = _FIXES.get(failure.kind, _FIXES["unexpected"]) % {"key_file": display(key_file())}
        if not use_fallback:
            log.warning("auto prompt: Gemini failed (%s): %s", failure.kind, message)
            raise I2PError(node, _INPUTS.get(failure.kind), f"Gemini failed: {message}", fix) from None
        log.warning("auto prompt: Gemini failed (%s), using the local template: %s", failure.kind, message)
        description, used = template_description(face_image, face, hair_mask)
        fix = fix.replace("; or turn use_fallback on.", ".")  # it is on
        if face is not None and getattr(face, "gender", None) is None and getattr(face, "age", None) is None:
            used = used + ["no gender/age: the face analyzer has no gender/age model (e.g. YuNet + AuraFace), "
                           "so the template says 'person'"]
        attributes = ", ".join(used) if used else "no face attributes connected"
        status = (f"FALLBACK local template ({attributes}). "
                  f"Gemini failed: {message} Fix: {fix}")
        return _result(description, settings, status, "fallback", None)

    CACHE.put(key, {"description": description, "model": model, "model_version": reply.model_version,
                    "usage": reply.usage, "removed_labels": removed, "created": int(time.time())}, folder)
    tokens = reply.usage.get("total_tokens")
    status = f"Gemini {model}" + (f" ({tokens} tokens)" if tokens is not None else "")
    if removed:
        status += f"; removed ethnicity labels: {', '.join(removed)}"
    return _result(description, settings, status, "gemini", key)
