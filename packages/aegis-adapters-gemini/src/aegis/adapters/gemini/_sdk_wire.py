"""google-genai objects <-> the REST JSON the pure modules read, via the SDK's own converters.

The SDK builds its request bodies with private converter functions; calling the same ones
makes the estimate read exactly the JSON the SDK will send. Its pydantic models dump to the
REST field names with ``by_alias=True``.
"""

from __future__ import annotations

from typing import Any

from google import genai
from google.genai import _common, models, types
from pydantic import BaseModel

__all__ = ["embed_body", "generate_body", "to_wire"]


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    for key in ("_url", "_query", "config"):
        body.pop(key, None)
    out = _common.encode_unserializable_types(_common.convert_to_dict(body))
    return out if isinstance(out, dict) else {}


def generate_body(
    client: genai.Client,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    config: types.GenerateContentConfig | None,
) -> dict[str, Any]:
    """The ``generateContent`` JSON body the SDK sends for these arguments."""
    params = types._GenerateContentParameters(model=model, contents=contents, config=config)
    body = models._GenerateContentParameters_to_mldev(client._api_client, params, None, params)
    return _clean(body)


def embed_body(
    client: genai.Client,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    config: types.EmbedContentConfig | None,
) -> dict[str, Any]:
    """The ``batchEmbedContents`` JSON body the SDK sends for these arguments."""
    params = types._EmbedContentParametersPrivate(model=model, contents=contents, config=config)
    body = models._EmbedContentParametersPrivate_to_mldev(client._api_client, params, None, params)
    return _clean(body)


def to_wire(value: BaseModel | None) -> dict[str, Any]:
    """A google-genai response object as REST JSON (camelCase, nulls left out)."""
    if value is None:
        return {}
    return value.model_dump(by_alias=True, exclude_none=True, mode="json")
