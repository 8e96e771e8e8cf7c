"""The sandbox's host functions, each behind a grant: runs granted the same KV namespace
share it (in this process and from worker processes), a run without the grant is refused
before it starts, read-only grants refuse writes, a quota overrun ends the guest with status
``quota``, host calls cost fuel, and the structured log reaches the CLI, the JSON and the
card. The public record shows what was granted and ``verify`` checks it. Components reach the
same host through the shipped WIT package (``tests/components/host.wat``): same store, grants,
refusals, quotas, fuel and log."""

import json
import subprocess
import sys

import pytest

from tests import programs
from wasm_sandbox import Grants, KvGrant, Limits, Sandbox
from wasm_sandbox.jupyter import html

BUMP = {"invoke": "bump"}


def kv(namespace="scores", **extra):
    return Grants(kv=KvGrant(namespace, **extra), host_log=True)


def test_two_runs_granted_a_namespace_share_it_and_others_do_not(sandbox):
    first = sandbox.run(programs.HOST_KV, grants=kv(), **BUMP)
    second = sandbox.run(programs.HOST_KV, grants=kv(), **BUMP)
    other = sandbox.run(programs.HOST_KV, grants=kv("another"), **BUMP)
    assert (first.outcome.returns, second.outcome.returns, other.outcome.returns) == (
        (1,),
        (2,),
        (1,),
    )
    assert second.outcome.host_log == (("info", "hello from the guest"),)
    assert not second.outcome.deterministic  # the store is state a replay does not have


def test_runs_in_worker_processes_share_the_namespace_too(home):
    with Sandbox(home=home, isolation="process") as sb:
        counts = [sb.run(programs.HOST_KV, grants=kv(), **BUMP).outcome.returns for _ in "abc"]
    assert counts == [(1,), (2,), (3,)]


def test_without_the_grant_the_module_is_refused_before_it_starts(sandbox):
    ex = sandbox.run(programs.HOST_KV, **BUMP)
    assert ex.outcome.status == "error"
    assert "this run was not granted it (--kv NAMESPACE[:ro])" in ex.outcome.message
    assert ex.outcome.fuel_used == 0 and ex.leaf_index is not None  # logged, never ran
    logged_only = sandbox.run(programs.HOST_KV, grants=Grants(kv=KvGrant("x")), **BUMP)
    assert "log: this run was not granted it (--host-log)" in logged_only.outcome.message


def test_a_read_only_grant_reads_but_never_writes(sandbox):
    sandbox.run(programs.HOST_KV, grants=kv(), **BUMP)
    ro = sandbox.run(programs.HOST_KV, grants=kv(writable=False), invoke="forget")
    assert ro.outcome.returns == (-3,)
    again = sandbox.run(programs.HOST_KV, grants=kv(writable=False), **BUMP)
    assert again.outcome.returns == (2,)  # it read 1; its write of 2 was refused
    assert sandbox.run(programs.HOST_KV, grants=kv(), **BUMP).outcome.returns == (2,)
    assert sandbox.run(programs.HOST_KV, grants=kv(), invoke="forget").outcome.returns == (1,)


def test_a_quota_overrun_ends_the_guest_with_status_quota(sandbox):
    ex = sandbox.run(programs.HOST_KV, grants=kv("big", max_bytes=10 * 1024), invoke="fill")
    assert ex.outcome.status == "quota"
    assert ex.outcome.message == (
        "the KV namespace 'big' would hold 10280 bytes, past its 10240 byte quota"
    )
    keys = sandbox.run(programs.HOST_KV, grants=kv("many", max_keys=3), invoke="fill")
    assert keys.outcome.status == "quota" and "4 keys, past its 3 key quota" in keys.outcome.message
    assert sandbox.verify(ex.id).verified


def test_host_calls_cost_fuel_so_work_cannot_hide_in_the_host(sandbox):
    grants = kv()
    few = sandbox.run(programs.HOST_KV, grants=grants, invoke="chatter", args=(10,))
    many = sandbox.run(programs.HOST_KV, grants=grants, invoke="chatter", args=(1000,))
    assert many.outcome.fuel_used - few.outcome.fuel_used >= 990 * 1000
    starved = sandbox.run(
        programs.HOST_KV,
        grants=grants,
        invoke="chatter",
        args=(10**6,),
        limits=Limits.parse(fuel=100_000),
    )
    assert starved.outcome.status == "out_of_fuel"


def test_the_log_is_cut_at_the_output_limit(sandbox):
    ex = sandbox.run(
        programs.HOST_KV,
        grants=kv(),
        invoke="chatter",
        args=(100,),
        limits=Limits.parse(output=50),
    )
    assert len(ex.outcome.host_log) == 10 and ex.outcome.output_truncated


def test_a_wild_pointer_is_an_error_code_not_a_crash(sandbox):
    ex = sandbox.run(programs.HOST_KV, grants=kv(), invoke="wild")
    assert ex.outcome.status == "ok" and ex.outcome.returns == (-2,)


def test_the_record_shows_the_grants_and_verify_checks_them(sandbox):
    ex = sandbox.run(programs.HOST_KV, grants=kv(writable=False), **BUMP)
    assert ex.record["grants"]["kv"] == {"namespace": "scores", "mode": "ro"}
    assert ex.record["grants"]["host_log"] is True
    assert sandbox.verify(ex.id).checks["grants"] == "ok"


def test_the_cli_json_and_the_card_show_the_log(home, tmp_path):
    src = tmp_path / "kv.wat"
    src.write_text(programs.HOST_KV)
    argv = [sys.executable, "-m", "wasm_sandbox.cli", "run", src, "--invoke", "bump",
            "--kv", "cli", "--host-log", "--home", home]  # fmt: skip
    human = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "--- host log\n[info] hello from the guest" in human
    out = json.loads(subprocess.run([*argv, "--json"], capture_output=True, check=True).stdout)
    assert out["returns"] == [2] and out["host_log"] == [["info", "hello from the guest"]]
    with Sandbox(home=home) as sb:
        shown = html.page(sb.run(programs.HOST_KV, grants=kv("cli"), **BUMP))
    assert "host log" in shown and "[info] hello from the guest" in shown


@pytest.mark.parametrize("spec", ["", "a b", "x" * 65, "ns:rx", "../up"])
def test_a_bad_namespace_is_one_clear_error(spec):
    from wasm_sandbox import LimitsError

    with pytest.raises(LimitsError, match="--kv: cannot read"):
        Grants.parse(kv=spec)


# Components: the WIT package wasm-sandbox:host@1.0.0 over the same host
READ_ONLY = "this run was granted the KV namespace read-only (--kv NAMESPACE:ro)"


def test_components_share_a_namespace_with_each_other_and_with_core_modules(sandbox, components):
    host = components["host"].read_bytes()
    first = sandbox.run(host, grants=kv(), **BUMP)
    second = sandbox.run(host, grants=kv(), **BUMP)
    other = sandbox.run(host, grants=kv("another"), **BUMP)
    assert [r.outcome.returns for r in (first, second, other)] == [
        ({"ok": 1},),
        ({"ok": 2},),
        ({"ok": 1},),
    ]
    assert second.outcome.host_log == (("info", "hello from the guest"),)
    assert not second.outcome.deterministic
    assert sandbox.run(programs.HOST_KV, grants=kv(), **BUMP).outcome.returns == (3,)
    assert sandbox.run(host, grants=kv(), **BUMP).outcome.returns == ({"ok": 4},)


def test_component_runs_in_worker_processes_share_the_namespace(home, components):
    host = components["host"].read_bytes()
    with Sandbox(home=home, isolation="process") as sb:
        counts = [sb.run(host, grants=kv(), **BUMP).outcome.returns for _ in "abc"]
    assert counts == [({"ok": 1},), ({"ok": 2},), ({"ok": 3},)]


def test_a_component_without_the_grant_is_refused_before_it_starts(sandbox, components):
    host = components["host"].read_bytes()
    ex = sandbox.run(host, **BUMP)
    assert ex.outcome.status == "error"
    assert ex.outcome.message == (
        "wasm-sandbox:host/kv@1.0.0 get: this run was not granted it (--kv NAMESPACE[:ro])"
    )
    assert ex.outcome.fuel_used == 0 and ex.leaf_index is not None
    logged_only = sandbox.run(host, grants=Grants(kv=KvGrant("x")), **BUMP)
    assert logged_only.outcome.message == (
        "wasm-sandbox:host/log@1.0.0 log: this run was not granted it (--host-log)"
    )


def test_a_component_importing_another_kv_type_is_refused(sandbox, components):
    ex = sandbox.run(components["forged"].read_bytes(), grants=kv(), invoke="peek")
    assert ex.outcome.status == "error"
    assert ex.outcome.message == (
        "wasm-sandbox:host/kv@1.0.0 get: the package has func(key: string) -> "
        "option<list<u8>>, the component imports func(key: u32) -> u32"
    )


def test_a_read_only_grant_gives_a_component_an_error_result(sandbox, components):
    host = components["host"].read_bytes()
    sandbox.run(host, grants=kv(), **BUMP)
    ro = kv(writable=False)
    assert sandbox.run(host, grants=ro, **BUMP).outcome.returns == ({"err": READ_ONLY},)
    assert sandbox.run(host, grants=ro, invoke="forget").outcome.returns == ({"err": READ_ONLY},)
    assert sandbox.run(host, grants=kv(), **BUMP).outcome.returns == ({"ok": 2},)
    assert sandbox.run(host, grants=kv(), invoke="forget").outcome.returns == ({"ok": True},)
    assert sandbox.run(host, grants=kv(), invoke="forget").outcome.returns == ({"ok": False},)


def test_a_component_over_the_quota_ends_with_status_quota(sandbox, components):
    host = components["host"].read_bytes()
    ex = sandbox.run(host, grants=kv("big", max_bytes=10 * 1024), invoke="fill")
    assert ex.outcome.status == "quota"
    assert ex.outcome.message == (
        "the KV namespace 'big' would hold 10280 bytes, past its 10240 byte quota"
    )
    keys = sandbox.run(host, grants=kv("many", max_keys=3), invoke="fill")
    assert keys.outcome.status == "quota" and "4 keys, past its 3 key quota" in keys.outcome.message
    assert sandbox.verify(ex.id).verified


def test_component_host_calls_cost_fuel(sandbox, components):
    host = components["host"].read_bytes()
    few = sandbox.run(host, grants=kv(), invoke="chatter", args=(10,))
    many = sandbox.run(host, grants=kv(), invoke="chatter", args=(1000,))
    assert many.outcome.fuel_used - few.outcome.fuel_used >= 990 * 1000
    limits = Limits.parse(fuel=100_000)
    starved = sandbox.run(host, grants=kv(), invoke="chatter", args=(10**6,), limits=limits)
    assert starved.outcome.status == "out_of_fuel"
    cut = sandbox.run(
        host, grants=kv(), invoke="chatter", args=(100,), limits=Limits.parse(output=50)
    )
    assert len(cut.outcome.host_log) == 10 and cut.outcome.output_truncated


def test_a_component_run_records_its_grants_and_verifies(sandbox, components):
    ex = sandbox.run(components["host"].read_bytes(), grants=kv(writable=False), **BUMP)
    assert ex.record["grants"]["kv"] == {"namespace": "scores", "mode": "ro"}
    assert ex.record["grants"]["host_log"] is True
    checked = sandbox.verify(ex.id)
    assert checked.verified and checked.checks["grants"] == "ok"
