"""The body of ``POST /wasm-sandbox/api/executions``, read into a `RunRequest`.

Everything here is plain Python (no tornado): the handler passes raw bytes in and gets a
`RunRequest` or a `BadField` naming the first field that is wrong, e.g.
``BadField("limits.fuel", "cannot read 'lots' (examples: 64MiB, 500ms, 1e7)")``.

A program can travel sealed to the server (``sealed_program``): HPKE base mode, the same
suite as the records (DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM), to the key
served at ``GET keys/public``, with its own ``info``::

    info = lp(b"wasm-sandbox/v1/rest/sealed-program") || lp(hex key id of that key)
    lp(x) = len(x) as 8 bytes big-endian || x

The plaintext is the program itself: a wasm binary (starts with ``\\0asm``), or UTF-8 text:
WAT, or Python when the body says ``"lang": "python"``.
``enc`` (65 bytes) and ``ciphertext`` (AEAD output, tag included) travel as base64.
`seal_program` is the client side, `open_program` the server side.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox import envelope
from wasm_sandbox.errors import BadField, DecryptionError, KeyStoreError, LimitsError
from wasm_sandbox.keys import KeyStore
from wasm_sandbox.limits import Limits
from wasm_sandbox.wave import Wave

WASM_MAGIC = b"\0asm"
LIMIT_NAMES = ("fuel", "memory", "timeout", "output", "dir_quota")
FIELDS = (
    "wat",
    "python",
    "wasm_b64",
    "sealed_program",
    "lang",
    "invoke",
    "args",
    "stdin",
    "argv",
    "deterministic",
    "limits",
    "recipient_public_key_pem",
)
PROGRAM_FIELDS = ("wat", "python", "wasm_b64", "sealed_program")
#: What the text of a ``sealed_program`` is (``lang``; a binary is recognised by itself).
SEALED_LANGS = ("wat", "python")
MAX_ARGS = 1000


@dataclass(frozen=True)
class RunRequest:
    """A checked ``POST executions`` body. ``program`` is wasm bytes or UTF-8 WAT."""

    program: bytes
    lang: str
    source_field: str
    invoke: str | None = None
    args: tuple[int | float | str, ...] = ()
    stdin: str | None = None
    argv: tuple[str, ...] = ()
    deterministic: bool = False
    limits: Mapping[str, int | float | str] = field(default_factory=dict)
    recipient: ec.EllipticCurvePublicKey | None = None

    def limits_within(self, default: Limits, maximum: Limits) -> Limits:
        """The asked limits (CLI units) over ``default``, each capped at ``maximum``."""
        limits = default
        for name, value in self.limits.items():
            try:
                limits = Limits.parse(limits, **{name: value})
            except LimitsError as exc:
                raise BadField(f"limits.{name}", _strip(str(exc), name)) from None
        return limits.capped(maximum)


def seal_program(program: bytes | str, server_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The ``sealed_program`` object for ``program`` (wasm bytes or WAT text)."""
    data = program.encode() if isinstance(program, str) else bytes(program)
    enc, ciphertext = envelope.seal_program(data, server_key)
    return {
        "enc": base64.b64encode(enc).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }


def open_program(enc: bytes, ciphertext: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Open a sealed program; raises `BadField` when it does not open with this key."""
    try:
        return envelope.open_program(enc, ciphertext, private_key)
    except DecryptionError as exc:
        where = "sealed_program.enc" if len(enc) != envelope.ENC_LEN else "sealed_program"
        raise BadField(where, str(exc)) from None


def parse(
    raw: bytes,
    private_key: Callable[[], ec.EllipticCurvePrivateKey],
) -> RunRequest:
    """Read a request body; ``private_key`` is asked for only when a program is sealed."""
    body = json_object(raw)
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise BadField(unknown[0], f"unknown field (expected some of: {', '.join(FIELDS)})")
    program, lang, source_field = _program(body, private_key)
    return RunRequest(
        program=program,
        lang=lang,
        source_field=source_field,
        invoke=_optional_str(body, "invoke", nonempty=True),
        args=_args(body.get("args")),
        stdin=_optional_str(body, "stdin"),
        argv=_strings(body.get("argv"), "argv"),
        deterministic=_bool(body.get("deterministic"), "deterministic"),
        limits=_limits(body.get("limits")),
        recipient=_recipient(body.get("recipient_public_key_pem")),
    )


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body read as one strict JSON object (UTF-8, no duplicate keys, no NaN)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadField("", "request body is not UTF-8") from None
    try:
        body = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except BadField:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadField("", f"request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadField("", "request body must be a JSON object")
    return body


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadField(key, "appears twice in the same object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise BadField("", f"request body is not valid JSON ({name} is not a JSON number)")


def _program(
    body: Mapping[str, Any], private_key: Callable[[], ec.EllipticCurvePrivateKey]
) -> tuple[bytes, str, str]:
    given = [k for k in PROGRAM_FIELDS if k in body]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise BadField(
            given[1] if given else "wat",
            f"give exactly one of {', '.join(PROGRAM_FIELDS)} (got {what})",
        )
    name = given[0]
    lang = _sealed_lang(body, name)
    if name in ("wat", "python"):
        text = body[name]
        if not isinstance(text, str):
            kind = "WebAssembly text" if name == "wat" else "Python source code"
            raise BadField(name, f"expected a string of {kind}")
        return _utf8(text, name), name, name
    if name == "wasm_b64":
        return _b64(body["wasm_b64"], "wasm_b64"), "wasm", "wasm_b64"
    sealed = body["sealed_program"]
    if not isinstance(sealed, dict):
        raise BadField("sealed_program", 'expected an object {"enc": base64, "ciphertext": base64}')
    extra = [k for k in sealed if k not in ("enc", "ciphertext")]
    if extra:
        raise BadField(f"sealed_program.{extra[0]}", "unknown field (expected enc, ciphertext)")
    enc = _b64(sealed.get("enc"), "sealed_program.enc")
    ciphertext = _b64(sealed.get("ciphertext"), "sealed_program.ciphertext")
    program = open_program(enc, ciphertext, private_key())
    return program, "wasm" if program.startswith(WASM_MAGIC) else lang, "sealed_program"


def _sealed_lang(body: Mapping[str, Any], program_field: str) -> str:
    """The ``lang`` of a sealed program's text (default ``wat``); refused beside others."""
    lang = body.get("lang")
    if lang is None:
        return "wat"
    if program_field != "sealed_program":
        raise BadField("lang", f"applies to sealed_program only ({program_field} says it)")
    if lang not in SEALED_LANGS:
        raise BadField("lang", f"expected one of {', '.join(SEALED_LANGS)}")
    return str(lang)


def _utf8(text: str, name: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadField(name, "contains a lone surrogate; send valid Unicode") from None


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise BadField(name, "expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadField(name, "is not valid base64 (RFC 4648, standard alphabet)") from None


def _optional_str(body: Mapping[str, Any], name: str, nonempty: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadField(name, "expected a string")
    if nonempty and not value:
        raise BadField(name, "must not be empty")
    _utf8(value, name)
    return value


def _bool(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadField(name, "expected true or false")
    return value


def _args(value: Any) -> tuple[int | float | str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadField("args", "expected an array of numbers or strings")
    if len(value) > MAX_ARGS:
        raise BadField("args", f"at most {MAX_ARGS} arguments")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise BadField(f"args[{i}]", "expected a number or a string")
        if isinstance(item, float) and not math.isfinite(item):
            raise BadField(f"args[{i}]", "number out of range (write inf or nan as a string)")
        if isinstance(item, str):
            _utf8(item, f"args[{i}]")
    return tuple(Wave(v) if isinstance(v, str) else v for v in value)  # strings: WAVE


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadField(name, "expected an array of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise BadField(f"{name}[{i}]", "expected a string")
        _utf8(item, f"{name}[{i}]")
    return tuple(value)


def _limits(value: Any) -> dict[str, int | float | str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadField("limits", 'expected an object such as {"fuel": "1e8", "timeout": "2s"}')
    out: dict[str, int | float | str] = {}
    for name, item in value.items():
        if name not in LIMIT_NAMES:
            raise BadField(f"limits.{name}", f"unknown limit (expected {', '.join(LIMIT_NAMES)})")
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise BadField(f"limits.{name}", 'expected a number or a string such as "2s"')
        out[name] = item
    return out


def _recipient(value: Any) -> ec.EllipticCurvePublicKey | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadField("recipient_public_key_pem", "expected a PEM string")
    try:
        return KeyStore.load_public_pem(_utf8(value, "recipient_public_key_pem"))
    except KeyStoreError as exc:
        raise BadField("recipient_public_key_pem", _strip(str(exc), "recipient key")) from None


def _strip(message: str, prefix: str) -> str:
    """``"fuel: cannot read ..."`` -> ``"cannot read ..."`` (the field is named separately)."""
    return message.removeprefix(f"{prefix}: ")
