"""A thin wrapper around google-genai's ``generate_content`` for one image-description request.

Why a wrapper: the SDK reports trouble as a zoo of exception types (its own ``APIError`` family, the
HTTP library's timeouts and connection errors, pydantic validation errors) whose messages may carry
request details. The node needs one kind of failure with a short, key-free message it can show in
the editor or fall back from, so every SDK error is mapped to :class:`GeminiFailure` here and nothing
from the SDK leaks past this module.

``google.genai`` is imported inside :func:`generate` only: importing the pack must stay cheap.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

#: Environment variable the SDK itself reads to redirect requests (a proxy, or the tests' fake server).
BASE_URL_ENV = "GOOGLE_GEMINI_BASE_URL"

#: Failure kinds, so callers can pick the fix to suggest without parsing messages.
KINDS = ("no_key", "auth", "not_found", "bad_request", "rate_limit", "server", "timeout", "network",
         "blocked", "empty", "unexpected")

_BLOCK_FINISH = {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "RECITATION", "IMAGE_SAFETY",
                 "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


class GeminiFailure(Exception):
    """Gemini did not give a usable description; ``kind`` is one of :data:`KINDS`, the message is
    safe to show (never contains the API key)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class GeminiReply:
    text: str
    model_version: str = ""
    finish_reason: str = ""
    usage: dict = field(default_factory=dict)  # prompt / output / total token counts where reported


@dataclass(frozen=True)
class ImagePart:
    data: bytes
    mime_type: str = "image/png"


def redact(text: str, secret: str | None) -> str:
    """``text`` with the key (and anything shaped like a Google API key) replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
    return _GOOGLE_KEY.sub("***", text)


def normalise_model_name(model: str) -> str | None:
    """``gemini-2.5-flash`` from ``gemini-2.5-flash`` or ``models/gemini-2.5-flash``; None if the
    name could not be a model id (spaces, slashes, URLs), which would otherwise build a wrong URL."""
    name = model.strip()
    if name.startswith("models/"):
        name = name[len("models/"):]
    return name if _MODEL_NAME.match(name) else None


def base_url() -> str | None:
    """The endpoint override from ``$GOOGLE_GEMINI_BASE_URL`` (None: Google's own endpoint)."""
    return os.environ.get(BASE_URL_ENV) or None


def generate(*, api_key: str, model: str, images: list[ImagePart], prompt: str, system_instruction: str,
             temperature: float, seed: int, timeout_s: float, retries: int = 0,
             retry_delay_s: float = 2.0) -> GeminiReply:
    """One ``generateContent`` call: images then the text prompt. Retries (429, 5xx, timeouts,
    refused connections) are the SDK's own, with ``retries`` extra attempts.

    Raises :class:`GeminiFailure` for every problem, including a reply without usable text.
    """
    from google import genai
    from google.genai import types

    url = base_url()
    try:
        http_options = types.HttpOptions(
            base_url=url,
            timeout=max(int(timeout_s * 1000), 1),  # the SDK takes milliseconds
            retry_options=types.HttpRetryOptions(
                attempts=1 + max(int(retries), 0), initial_delay=retry_delay_s, max_delay=max(retry_delay_s * 8, 1.0),
                exp_base=2.0, jitter=0.0),
        )
        config = types.GenerateContentConfig(
            system_instruction=system_instruction, temperature=float(temperature), seed=int(seed),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))  # no tools here
        contents = [types.Part.from_bytes(data=im.data, mime_type=im.mime_type) for im in images]
        contents.append(prompt)
        with genai.Client(api_key=api_key, vertexai=False, http_options=http_options) as client:
            response = client.models.generate_content(model=model, contents=contents, config=config)
    except Exception as exc:  # noqa: BLE001 - every SDK error becomes one clear failure
        failure = _map_exception(exc, api_key, url)
        raise GeminiFailure(failure.kind, redact(failure.message, api_key)) from None
    return _reply_from(response)


def _reply_from(response) -> GeminiReply:
    feedback = getattr(response, "prompt_feedback", None)
    block = getattr(feedback, "block_reason", None) if feedback is not None else None
    if block:
        detail = getattr(feedback, "block_reason_message", None) or ""
        raise GeminiFailure("blocked", f"Gemini blocked the request ({_enum(block)}). {detail}".strip())
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        raise GeminiFailure("empty", "Gemini returned no candidates.")
    cand = candidates[0]
    finish = _enum(getattr(cand, "finish_reason", None))
    content = getattr(cand, "content", None)
    parts = getattr(content, "parts", None) or []
    text = "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
    if finish in _BLOCK_FINISH:
        raise GeminiFailure("blocked", f"Gemini stopped its answer for safety reasons (finish reason {finish}).")
    if not text.strip():
        raise GeminiFailure("empty", f"Gemini returned no text (finish reason {finish or 'none'}).")
    usage = {}
    meta = getattr(response, "usage_metadata", None)
    if meta is not None:
        for name, attr in (("prompt_tokens", "prompt_token_count"), ("output_tokens", "candidates_token_count"),
                           ("total_tokens", "total_token_count")):
            value = getattr(meta, attr, None)
            if value is not None:
                usage[name] = int(value)
    return GeminiReply(text=text, model_version=str(getattr(response, "model_version", "") or ""),
                       finish_reason=finish, usage=usage)


def _enum(value) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _map_exception(exc: Exception, api_key: str, url: str | None) -> GeminiFailure:
    from google.genai import errors

    where = f" at {url}" if url else ""
    if isinstance(exc, errors.APIError):
        code = int(exc.code or 0)
        status = exc.status or ""
        message = redact(str(exc.message or ""), api_key)[:300]
        head = f"Gemini answered {code} {status}".rstrip() + (f": {message}" if message else ".")
        if code == 429:
            return GeminiFailure("rate_limit", head)
        if code >= 500:
            return GeminiFailure("server", head)
        if code in (401, 403) or "api key" in message.lower() or "api_key" in message.lower():
            return GeminiFailure("auth", head)
        if code == 404:
            return GeminiFailure("not_found", head)
        return GeminiFailure("bad_request", head)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names or isinstance(exc, TimeoutError):
        return GeminiFailure("timeout", f"Gemini did not answer in time{where}.")
    if {"ConnectError", "TransportError", "NetworkError"} & names or isinstance(exc, OSError):
        return GeminiFailure("network", f"could not reach Gemini{where} (no network, a proxy or a firewall).")
    return GeminiFailure("unexpected", f"the Gemini answer{where} could not be used ({type(exc).__name__}).")
