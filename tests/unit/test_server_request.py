"""Reading ``POST executions`` bodies, and the sealed-program envelope, without a server."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wasm_sandbox import envelope
from wasm_sandbox.envelope import SEALED_PROGRAM_PURPOSE, sealed_program_info
from wasm_sandbox.errors import BadField
from wasm_sandbox.jupyter.server_request import (
    open_program,
    parse,
    seal_program,
)
from wasm_sandbox.limits import UNLIMITED_FUEL, Limits

SERVER = ec.generate_private_key(ec.SECP256R1())
WAT = '(module (func (export "f") (result i32) i32.const 1))'


def read(body) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse(raw, lambda: SERVER)


def test_a_full_request_is_read():
    client = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = client.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    req = read(
        {
            "wat": WAT,
            "invoke": "f",
            "args": [1, "0x2", 3.5],
            "stdin": "in",
            "argv": ["-v"],
            "deterministic": True,
            "limits": {"fuel": "1e6"},
            "recipient_public_key_pem": pem,
        }
    )
    assert (req.program, req.lang, req.source_field) == (WAT.encode(), "wat", "wat")
    assert req.args == (1, "0x2", 3.5) and req.argv == ("-v",) and req.deterministic
    assert req.recipient.public_numbers() == client.public_numbers()


def test_wat_text_is_never_read_as_a_path(tmp_path):
    secret = tmp_path / "secret.wat"
    secret.write_text(WAT)
    req = read({"wat": str(secret)})
    assert req.program == str(secret).encode() and req.lang == "wat"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", ""),
        (b"[]", ""),
        (b'{"wat": "a", "wat": "b"}', "wat"),
        (b'{"wat": NaN}', ""),
        ({}, "wat"),
        ({"wat": WAT, "sealed_program": {}}, "sealed_program"),
        ({"wat": None}, "wat"),
        ({"wasm_b64": "@@@"}, "wasm_b64"),
        ({"wasm_b64": "AAE"}, "wasm_b64"),
        ({"wat": WAT, "invoke": ""}, "invoke"),
        ({"wat": WAT, "invoke": 3}, "invoke"),
        ({"wat": WAT, "args": "1 2"}, "args"),
        ({"wat": WAT, "args": [1, None]}, "args[1]"),
        (b'{"wat": "(module)", "args": [1e400]}', "args[0]"),
        ({"wat": WAT, "argv": ["a", 1]}, "argv[1]"),
        ({"wat": WAT, "stdin": 5}, "stdin"),
        ({"wat": WAT, "deterministic": "yes"}, "deterministic"),
        ({"wat": WAT, "limits": []}, "limits"),
        ({"wat": WAT, "limits": {"tables": 1}}, "limits.tables"),
        ({"wat": WAT, "limits": {"fuel": True}}, "limits.fuel"),
        ({"wat": WAT, "recipient_public_key_pem": 1}, "recipient_public_key_pem"),
        ({"wat": WAT, "lang": "c"}, "lang"),
        ({"wat": "\ud800"}, "wat"),
    ],
)
def test_every_problem_names_its_field(body, field):
    with pytest.raises(BadField) as err:
        read(body)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: " if field else "request body")


def test_a_non_p256_recipient_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(BadField, match="P-256") as err:
        read({"wat": WAT, "recipient_public_key_pem": pem})
    assert err.value.field == "recipient_public_key_pem"


def test_limits_are_parsed_in_cli_units_and_capped():
    req = read({"wat": WAT, "limits": {"fuel": "1e15", "memory": "1MiB", "timeout": "250ms"}})
    maximum = Limits.parse(fuel="1e9", timeout="10s")
    limits = req.limits_within(Limits(), maximum)
    assert (limits.fuel, limits.memory, limits.timeout) == (10**9, 2**20, 0.25)
    for bad, field in (
        ({"fuel": "x"}, "limits.fuel"),
        ({"timeout": 0}, "limits.timeout"),
        ({"memory": "3 parsecs"}, "limits.memory"),
    ):
        with pytest.raises(BadField) as err:
            read({"wat": WAT, "limits": bad}).limits_within(Limits(), maximum)
        assert err.value.field == field


def test_fuel_none_is_accepted_and_capped_at_the_server_maximum():
    req = read({"wat": WAT, "limits": {"fuel": "none", "timeout": "250ms"}})
    assert req.limits_within(Limits(), Limits(fuel=UNLIMITED_FUEL)).fuel == UNLIMITED_FUEL
    assert req.limits_within(Limits(), Limits.parse(fuel="1e9")).fuel == 10**9


def test_the_dir_quota_is_a_limit_in_cli_units_capped_by_the_default():
    limits = read({"wat": WAT, "limits": {"dir_quota": "1GiB"}}).limits_within(Limits(), Limits())
    assert limits.dir_quota == Limits().dir_quota == 256 << 20
    small = read({"wat": WAT, "limits": {"dir_quota": "1MiB"}}).limits_within(Limits(), Limits())
    assert small.dir_quota == 1 << 20 and small.to_record()["dir_quota"] == 1 << 20
    with pytest.raises(BadField) as err:
        read({"wat": WAT, "limits": {"dir_quota": "lots"}}).limits_within(Limits(), Limits())
    assert err.value.field == "limits.dir_quota"


def test_a_sealed_program_opens_with_the_server_key_only():
    wasm = b"\0asm\x01\0\0\0"
    sealed = seal_program(wasm, SERVER.public_key())
    req = read({"sealed_program": sealed})
    assert (req.program, req.lang, req.source_field) == (wasm, "wasm", "sealed_program")
    assert read({"sealed_program": seal_program(WAT, SERVER.public_key())}).lang == "wat"
    enc, ct = (base64.b64decode(sealed[k]) for k in ("enc", "ciphertext"))
    with pytest.raises(BadField, match="does not open"):
        open_program(enc, ct, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(BadField, match="does not open"):
        open_program(enc, ct[:-1] + bytes([ct[-1] ^ 1]), SERVER)
    with pytest.raises(BadField) as err:
        open_program(enc[:10], ct, SERVER)
    assert err.value.field == "sealed_program.enc"


def test_the_sealed_program_info_is_its_own_domain():
    info = sealed_program_info(SERVER.public_key())
    key_id = envelope.key_id(SERVER.public_key()).encode()
    purpose = SEALED_PROGRAM_PURPOSE.encode()
    assert info == len(purpose).to_bytes(8, "big") + purpose + (64).to_bytes(8, "big") + key_id
    # A record part sealed by the envelope does not open as a sealed program, and back.
    part = envelope.seal("program", b"\0asm", SERVER.public_key(), "0" * 32)
    with pytest.raises(BadField):
        open_program(part.enc, part.ciphertext, SERVER)
    sealed = seal_program(b"\0asm", SERVER.public_key())
    with pytest.raises(envelope.DecryptionError):
        envelope.open_part(
            "program",
            "0" * 32,
            base64.b64decode(sealed["enc"]),
            base64.b64decode(sealed["ciphertext"]),
            SERVER,
            b"\0" * 32,
        )
