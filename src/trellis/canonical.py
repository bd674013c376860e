"""Canonical JSON and digests, byte-compatible with upstream's TypeScript rule (PROTOCOL §2).

The rule is RFC 8785 (JCS) as JavaScript produces it: no whitespace, object keys sorted by
UTF-16 code units, strings escaped like ``JSON.stringify``, numbers formatted like
``Number.prototype.toString``.  Digests hash the UTF-8 of that text with SHA-256 and encode
it as unpadded base64url.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from trellis.encoding import b64url_encode, sha256

__all__ = ["canonical_json", "json_digest", "utf16_key"]


def utf16_key(text: str) -> bytes:
    """Sort key that orders strings by UTF-16 code units, as JavaScript's default sort does."""
    return text.encode("utf-16-be", "surrogatepass")


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of ``value``.

    Accepts ``None``, ``bool``, ``int``, ``float``, ``str``, lists/tuples and mappings with
    string keys.  Raises ``ValueError`` for NaN, infinities, ``-0.0`` and anything that is not
    JSON.
    """
    parts: list[str] = []
    _emit(value, parts, "$")
    return "".join(parts)


def json_digest(value: Any) -> str:
    """base64url(SHA-256(utf8(canonical_json(value))))."""
    return b64url_encode(sha256(canonical_json(value).encode("utf-8")))


def _emit(value: Any, out: list[str], path: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_js_string(value))
    elif isinstance(value, int):
        out.append(_js_int(value, path))
    elif isinstance(value, float):
        out.append(_js_number(value, path))
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        for key in keys:
            if not isinstance(key, str):
                raise ValueError(f"{path}: object key {key!r} is not a string")
        out.append("{")
        for index, key in enumerate(sorted(keys, key=utf16_key)):
            if index:
                out.append(",")
            out.append(_js_string(key))
            out.append(":")
            _emit(value[key], out, f"{path}.{key}")
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out, f"{path}[{index}]")
        out.append("]")
    else:
        raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _js_string(text: str) -> str:
    """Escape as ``JSON.stringify`` does: quote, backslash, C0 controls and lone surrogates."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            # Python strings hold surrogate pairs as one astral character, so any surrogate
            # code point seen here is lone; well-formed JSON.stringify escapes it.
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_MAX_EXACT_INT = 2**53


def _js_int(value: int, path: str) -> str:
    if -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT and abs(value) < 10**21:
        return str(value)
    # JavaScript numbers are doubles: a larger integer is what JSON.parse would make of it,
    # and past the largest double that is an infinity, which has no canonical form either
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(
            f"{path}: an integer of {len(str(abs(value)))} digits is not a finite number; "
            "canonical JSON rejects it"
        ) from None
    return _js_number(number, path)


def _js_number(value: float, path: str) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{path}: {value} is not a finite number; canonical JSON rejects it")
    if value == 0.0:
        if math.copysign(1.0, value) < 0:
            raise ValueError(f"{path}: -0.0 has no canonical JSON form; use 0")
        return "0"
    sign = "-" if value < 0 else ""
    digits, exponent = _shortest_digits(abs(value))
    return sign + _format_js(digits, exponent)


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits ``d1d2...dk`` and ``n`` with value = 0.d1d2...dk * 10**n."""
    text = repr(value)
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    leading_zeros = len(whole + fraction) - len(digits)
    # position of the decimal point relative to the first significant digit
    n = len(whole) - leading_zeros + exponent
    digits = digits.rstrip("0") or "0"
    return digits, n


def _format_js(digits: str, n: int) -> str:
    """ECMAScript Number::toString for a positive finite value (spec steps 6-10)."""
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exp = n - 1
    exp_text = f"e+{exp}" if exp >= 0 else f"e-{-exp}"
    if k == 1:
        return digits + exp_text
    return digits[0] + "." + digits[1:] + exp_text
