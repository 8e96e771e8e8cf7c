"""Trust levels and manifests: a trusted signer's manifest widens the grants within the
operator's maximums, the same module unsigned (or signed by a stranger) runs with the
defaults, a dev signer gets everything with a loud card, and every decision is in the
record."""

import json
import subprocess
import sys

import pytest
import wasmtime

from tests import programs
from wasm_sandbox import PolicyError, Sandbox, leb128, signing
from wasm_sandbox.jupyter import html

MANIFEST = {"kv": "scores", "host_log": True, "dirs": ["/data:rw"], "limits": {"fuel": "1e12"}}


def with_manifest(wasm: bytes, manifest: dict) -> bytes:
    name, data = b"wasm-sandbox-manifest", json.dumps(manifest).encode()
    body = leb128.encode(len(name)) + name + data
    return wasm + b"\x00" + leb128.encode(len(body)) + body


@pytest.fixture
def setup(home, tmp_path):
    """A sandbox, its trust file (its own signer trusted), a data dir, and the module with
    its manifest: signed by this home, unsigned, and signed by a stranger."""
    data = tmp_path / "data"
    data.mkdir()
    sb = Sandbox(home=home)
    key = sb.keys.signer_verifier_key
    trust = tmp_path / "trust.toml"
    trust.write_text(
        '[operator]\nmax_fuel = "1e11"\nkv = ["scores"]\nhost_log = true\n'
        f'dirs = ["{data}:/data:ro"]\n\n[[signer]]\nkey = "{key}"\nlevel = "trusted"\n'
    )
    plain = with_manifest(wasmtime.wat2wasm(programs.HOST_KV), MANIFEST)
    with Sandbox(home=tmp_path / "stranger") as other:
        foreign = signing.sign(plain, other.keys.module_signing_key())
    modules = {
        "signed": signing.sign(plain, sb.keys.module_signing_key()),
        "unsigned": plain,
        "foreign": foreign,
    }
    yield sb, trust, modules, key
    sb.close()


def decisions(ex):
    return {d["capability"]: d["decision"] for d in ex.record["policy"]["decisions"]}


def test_a_trusted_signers_manifest_widens_the_grants_within_the_maximums(setup):
    sb, trust, modules, key = setup
    ex = sb.run(modules["signed"], invoke="bump", trust=str(trust))
    assert ex.outcome.status == "ok" and ex.outcome.returns == (1,)
    assert ex.outcome.host_log == (("info", "hello from the guest"),)
    assert ex.record["signer"] == key and ex.record["policy"]["level"] == "trusted"
    assert decisions(ex) == {
        "kv:scores": "granted",
        "host_log": "granted",
        "dir:/data": "narrowed",  # asked rw, the operator offers it read-only
        "limit:fuel": "narrowed",  # asked 1e12, capped at the operator's 1e11
    }
    assert ex.record["limits"]["fuel"] == 10**11
    assert ex.record["grants"]["dirs"] == [{"guest": "/data", "mode": "ro"}]
    assert ex.record["grants"]["kv"] == {"namespace": "scores", "mode": "rw"}
    assert sb.verify(ex.id).verified


@pytest.mark.parametrize("which", ["unsigned", "foreign"])
def test_the_same_module_unsigned_or_by_a_stranger_runs_with_the_defaults(setup, which):
    sb, trust, modules, _ = setup
    ex = sb.run(modules[which], invoke="bump", trust=str(trust))
    assert ex.outcome.status == "error" and "not granted" in ex.outcome.message
    assert ex.record["policy"]["level"] == "unknown"
    assert set(decisions(ex).values()) == {"refused"}
    assert "signer" not in ex.record


def test_a_dev_signer_gets_everything_and_a_loud_card(setup, tmp_path):
    sb, _, modules, key = setup
    dev = tmp_path / "dev.toml"
    dev.write_text(f'[[signer]]\nkey = "{key}"\nlevel = "dev"\n')
    ex = sb.run(modules["signed"], invoke="bump", trust=str(dev))
    assert ex.outcome.returns == (1,) and ex.record["policy"]["level"] == "dev"
    assert decisions(ex)["limit:fuel"] == "granted" and ex.record["limits"]["fuel"] == 10**12
    assert decisions(ex)["dir:/data"] == "refused"  # no host directory to give it
    assert "DEV MODE" in html.page(ex)


def test_the_homes_trust_file_applies_without_an_option(setup):
    sb, trust, modules, _ = setup
    (sb.home / "trust.toml").write_text(trust.read_text())
    ex = sb.run(modules["signed"], invoke="bump")
    assert ex.record["policy"]["level"] == "trusted" and ex.outcome.returns == (1,)


def test_without_trust_file_or_manifest_records_carry_no_policy(sandbox):
    assert "policy" not in sandbox.run(programs.ADD, invoke="add", args=(1, 2)).record


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[signer]]\nkey = 'x'\n", "malformed verifier key"),
        ("[[signer]\n", "not TOML"),
        ("[operator]\nkv = ['a b']\n", "--kv: cannot read"),
        ("[operator]\nmax_fuel = 'lots'\n", "fuel"),
    ],
)
def test_a_bad_trust_file_is_one_clear_refusal(setup, tmp_path, text, words):
    sb, _, modules, _ = setup
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(PolicyError, match=words):
        sb.run(modules["signed"], invoke="bump", trust=str(bad))


def test_a_malformed_manifest_is_refused(sandbox):
    wasm = with_manifest(wasmtime.wat2wasm(programs.ADD), {"dirs": ["relative"]})
    with pytest.raises(PolicyError, match="manifest is malformed"):
        sandbox.run(wasm, invoke="add", args=(1, 2))


def test_the_cli_takes_a_trust_file_and_log_shows_the_decisions(setup, tmp_path):
    sb, trust, modules, _ = setup
    path = tmp_path / "signed.wasm"
    path.write_bytes(modules["signed"])
    home = str(sb.home)
    sb.close()
    base = [sys.executable, "-m", "wasm_sandbox.cli"]
    subprocess.run([*base, "run", path, "--invoke", "bump", "--trust", trust, "--home", home],
                   check=True, capture_output=True)  # fmt: skip
    log = subprocess.run([*base, "log", "-n", "1", "--json", "--home", home],
                         check=True, capture_output=True).stdout  # fmt: skip
    assert json.loads(log)[0]["policy"]["level"] == "trusted"
    bad = subprocess.run([*base, "run", path, "--trust", tmp_path / "none.toml", "--home", home],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "cannot read it" in bad.stderr and "Traceback" not in bad.stderr
