"""The host API's WIT package: what a component may import from it, checked before linking."""

import pytest

from wasm_sandbox import GrantError, Grants, KvGrant
from wasm_sandbox.hostapi import Host
from wasm_sandbox.hostwit import INTERFACES, WIT, _interface


def test_the_shipped_package_names_every_interface_and_function():
    text = WIT.read_text()
    assert "package wasm-sandbox:host@1.0.0;" in text
    for interface, (_, functions) in INTERFACES.items():
        assert f"interface {interface} {{" in text
        assert all(f"  {name}: func(" in text for name in functions)


@pytest.mark.parametrize(
    ("name", "functions", "message"),
    [
        ("wasm-sandbox:host/kv@2.0.0", {}, "has no interface 'wasm-sandbox:host/kv@2.0.0'"),
        ("wasm-sandbox:host/files@1.0.0", {}, "(kv@1.0.0, log@1.0.0)"),
        ("wasm-sandbox:host/kv@1.0.0", {"list": None}, "has no function 'list' (get, set, delete)"),
    ],
)
def test_an_import_the_package_lacks_is_refused(name, functions, message):
    host = Host(Grants(kv=KvGrant("x", store=":memory:")), 0)
    with pytest.raises(GrantError) as refused:
        _interface(host, name, functions)
    assert message in str(refused.value)


def test_an_interface_needs_its_grant():
    get = INTERFACES["kv"][1]["get"]
    with pytest.raises(GrantError, match=r"kv@1.0.0 get: this run was not granted it \(--kv"):
        _interface(Host(Grants(), 0), "wasm-sandbox:host/kv@1.0.0", {"get": get})
    host = Host(Grants(kv=KvGrant("x", store=":memory:")), 0)
    assert _interface(host, "wasm-sandbox:host/kv@1.0.0", {"get": get}) == "kv"
    host.close()
