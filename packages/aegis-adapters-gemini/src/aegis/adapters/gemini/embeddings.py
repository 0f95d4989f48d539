"""OpenAI ``/v1/embeddings`` <-> Gemini ``batchEmbedContents`` (REST JSON).

``input`` (a string or a list of strings) becomes one request per string; ``dimensions``
becomes ``outputDimensionality``. Token-array inputs cannot be translated (Gemini takes text
only) and are rejected, like every other field with no Gemini equivalent; ``user`` is accepted
and not sent. ``encoding_format: base64`` (the openai SDK's default) is honoured by packing
each vector as little-endian float32, as OpenAI does.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._checks import array, fail, is_int, mapping, string, unsupported
from .errors import ResponseTranslationError
from .usage import usage_from_response

__all__ = ["GeminiEmbeddingsRequest", "embeddings_request_to_gemini", "gemini_embeddings_to_openai"]

_FIELDS: Final = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


@dataclass(frozen=True, slots=True)
class GeminiEmbeddingsRequest:
    """An OpenAI embeddings request translated for Gemini."""

    body: dict[str, Any]
    """The ``batchEmbedContents`` JSON body."""
    model: str
    """The model the OpenAI request named."""
    encoding_format: Literal["float", "base64"]


def embeddings_request_to_gemini(
    request: Mapping[str, Any], *, gemini_model: str | None = None
) -> GeminiEmbeddingsRequest:
    """Translate an OpenAI embeddings body; ``gemini_model`` overrides the model to call."""
    request = mapping(request, "body")
    for key in request:
        if key not in _FIELDS:
            unsupported(str(key), "is not supported by the Gemini translation")
    model = string(request.get("model"), "model")
    raw = request.get("input")
    inputs = [raw] if isinstance(raw, str) else list(array(raw, "input"))
    if not inputs:
        fail("input", "must not be empty")
    texts = []
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            unsupported(f"input[{i}]", "Gemini embeds text only, not token arrays")
        if not item:
            fail(f"input[{i}]", "must not be empty")
        texts.append(item)
    dimensions = request.get("dimensions")
    if dimensions is not None and (not is_int(dimensions) or dimensions < 1):
        fail("dimensions", "must be a positive integer")
    encoding = request.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        fail("encoding_format", "must be float or base64")
    target = (gemini_model or model).removeprefix("models/")
    requests = []
    for text in texts:
        one: dict[str, Any] = {"model": f"models/{target}", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            one["outputDimensionality"] = dimensions
        requests.append(one)
    return GeminiEmbeddingsRequest(
        {"requests": requests}, model, "base64" if encoding == "base64" else "float"
    )


def _encode(values: Sequence[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return list(values)
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def gemini_embeddings_to_openai(
    response: Mapping[str, Any],
    *,
    model: str,
    encoding_format: Literal["float", "base64"] = "float",
) -> dict[str, Any]:
    """Translate a ``batchEmbedContents`` (or ``embedContent``) response into OpenAI's shape."""
    raw = response.get("embeddings")
    if raw is None and isinstance(response.get("embedding"), Mapping):
        raw = [response["embedding"]]
    if not isinstance(raw, Sequence):
        raise ResponseTranslationError("the embedding response holds no embeddings")
    data = []
    for i, embedding in enumerate(raw):
        values = embedding.get("values") if isinstance(embedding, Mapping) else None
        if not isinstance(values, Sequence) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise ResponseTranslationError(f"embedding {i} has no numeric values")
        data.append(
            {"object": "embedding", "index": i, "embedding": _encode(values, encoding_format)}
        )
    usage = usage_from_response(response)
    prompt = 0 if usage is None else usage.input_tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }
