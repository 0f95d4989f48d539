"""JSON decoding of what the upstream answers: orjson, with the standard library as the judge.

Every answer and every streamed event the proxy meters is decoded once; orjson does that in a
fraction of the standard library's time (a 24-event stream takes about an eighth fewer
instructions through the proxy, ``bench.instructions``). It decodes what it accepts as
:func:`json.loads` does, except integers beyond 64 bits, which it turns into floats: a
document with a run of 19 digits is left to :func:`json.loads` (an upstream that reports
10**20 tokens must be charged for an integer, never a rounded float). What orjson refuses
(``NaN``, lone surrogates, UTF-16 bytes, invalid JSON) is decoded again by :func:`json.loads`,
so it fails, or not, exactly as it would without orjson. Without orjson (an interpreter it
has no wheel for) this is :func:`json.loads`.

Request bodies stay with :func:`json.loads` (their nesting limit is the interpreter's, which
the proxy answers with a 400), and encoding stays in the standard library (receipts need
their canonical bytes).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["loads"]

# 19 digits: every integer orjson cannot hold in 64 bits has at least as many. For bytes,
# mapping every digit to "0" and looking for 19 of them is several times faster than a regex.
_ZEROS: Final = b"0" * 19
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_TEXT: Final = re.compile(r"\d{19}").search


def _has_long_number(data: bytes | str) -> bool:
    if isinstance(data, str):
        return _LONG_TEXT(data) is not None
    return _ZEROS in data.translate(_DIGITS_AS_ZERO)


try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency where it has wheels
    loads = json.loads
else:
    _fast = orjson.loads
    _refused = orjson.JSONDecodeError

    def loads(data: bytes | str) -> Any:  # type: ignore[misc]
        """Decode ``data`` as :func:`json.loads` would (and raise what it raises)."""
        if not _has_long_number(data):
            try:
                return _fast(data)
            except _refused:
                pass
        return json.loads(data)
