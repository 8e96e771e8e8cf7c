"""Signed modules in the tool-conventions (wasmsign2) format: what a signature covers, the
three refusals a user meets (unsigned, altered after signing, another signer), hostile
signature sections, and that a signed module and component still run."""

import hashlib

import pytest
import wasmtime
import wasmtime.component
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import programs
from wasm_sandbox import PolicyError, leb128, signing
from wasm_sandbox.checkpoint import parse_verifier_key, verifier_key

WASM = wasmtime.wat2wasm(programs.ADD)


def key_pair(name="signer.test/a"):
    sk = Ed25519PrivateKey.generate()
    return sk, parse_verifier_key(verifier_key(name, sk.public_key()))


def leb(n):
    return leb128.encode(n)


def test_the_signature_section_is_first_and_signs_every_byte_after_it():
    sk, vk = key_pair()
    signed = signing.sign(WASM, sk)
    assert signed[:8] == WASM[:8] and signed.endswith(WASM[8:])
    data, rest = signing.split(signed)
    assert rest == WASM[8:]
    # the payload, field by field, as Signatures.md and wasmsign2 lay it out
    digest = hashlib.sha256(WASM[8:]).digest()
    assert data[:3] == b"\x01\x01\x01" and data[3] == 1  # version, content type, SHA-256; 1 set
    hashes = data[5:]
    assert hashes[0] == 1 and hashes[1:33] == digest and hashes[33] == 1
    entry = hashes[35:]
    assert entry[:2] == b"\x00\x01" and entry[2] == 64  # no key id, Ed25519, 64 bytes
    vk.public_key.verify(entry[3:], b"wasmsig\x01\x01\x01" + digest)
    assert signing.signer(signed, [vk]) == vk


def test_signing_again_replaces_the_signature():
    sk, vk = key_pair()
    other, _ = key_pair("signer.test/b")
    twice = signing.sign(signing.sign(WASM, other), sk)
    assert signing.split(twice)[1] == WASM[8:]
    assert signing.signer(twice, [vk]) == vk


def test_an_unsigned_module_is_refused():
    _, vk = key_pair()
    with pytest.raises(PolicyError, match="not signed"):
        signing.signer(WASM, [vk])


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b + b"\x00\x04\x03abc",  # a custom section appended
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # a byte of the code changed
        lambda b: b[: len(b) - 3],  # cut short
    ],
    ids=["appended-section", "changed-byte", "truncated"],
)
def test_a_module_altered_after_signing_is_refused(change):
    sk, vk = key_pair()
    with pytest.raises(PolicyError, match="altered after signing"):
        signing.signer(change(signing.sign(WASM, sk)), [vk])


def test_a_module_signed_by_another_key_is_refused_naming_the_required_one():
    sk, _ = key_pair("signer.test/a")
    _, required = key_pair("signer.test/required")
    with pytest.raises(PolicyError, match=r"not by a required key \(signer.test/required\)"):
        signing.signer(signing.sign(WASM, sk), [required])


def test_any_of_several_keys_will_do():
    sk, vk = key_pair("signer.test/a")
    _, other = key_pair("signer.test/b")
    assert signing.signer(signing.sign(WASM, sk), [other, vk]) == vk


def section(name: bytes, data: bytes) -> bytes:
    body = leb(len(name)) + name + data
    return b"\x00" + leb(len(body)) + body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02\x01\x01\x00",  # another spec version
        b"\x01\x01\x02\x00",  # another hash function
        b"\x01\x01\x01\xff\xff\xff\xff\x0f",  # 4 billion hash sets
        b"\x01\x01\x01\x01\x05\x01abc",  # a set that runs past its length
        b"\x01\x01\x01\x00junk",  # bytes after the last set
    ],
    ids=["empty", "version", "hash-fn", "huge-count", "truncated-set", "trailing"],
)
def test_a_malformed_signature_section_is_one_clear_refusal(data):
    _, vk = key_pair()
    wasm = WASM[:8] + section(b"signature", data) + WASM[8:]
    with pytest.raises(PolicyError, match="signature section is malformed"):
        signing.signer(wasm, [vk])


def test_a_signature_section_that_is_not_first_does_not_count():
    sk, vk = key_pair()
    signed = signing.sign(WASM, sk)
    data, _ = signing.split(signed)
    late = WASM + section(b"signature", data)
    with pytest.raises(PolicyError, match="not signed"):
        signing.signer(late, [vk])


def test_text_is_not_a_binary():
    _, vk = key_pair()
    with pytest.raises(PolicyError, match="not a WebAssembly binary"):
        signing.signer(programs.ADD.encode(), [vk])


def test_a_signed_module_and_a_signed_component_still_run(components):
    sk, vk = key_pair()
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, signing.sign(WASM, sk))
    store = wasmtime.Store(engine)
    add = wasmtime.Instance(store, module, []).exports(store)["add"]
    assert add(store, 2, 3) == 5
    component = signing.sign(components["calc"].read_bytes(), sk)
    assert signing.signer(component, [vk]) == vk
    config = wasmtime.Config()
    config.wasm_component_model = True
    wasmtime.component.Component(wasmtime.Engine(config), component)
