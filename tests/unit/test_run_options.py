"""`RunOptions`: one value for every way of running, and the three steps that read it."""

import inspect
import pickle
from dataclasses import fields

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import programs
from wasm_sandbox import Grants, Limits, RunOptions, Sandbox
from wasm_sandbox.envelope import key_id
from wasm_sandbox.job import Job, execute
from wasm_sandbox.sources import Program


def test_updated_changes_fields_folds_stdin_and_refuses_unknown_names():
    base = RunOptions(invoke="add", args=[1, 2], grants=Grants(argv=("x",)))
    assert base.args == (1, 2)
    changed = base.updated(stdin="hi", limits=None, invoke="sub")
    assert (changed.invoke, changed.grants.stdin, changed.grants.argv) == ("sub", b"hi", ("x",))
    assert changed.limits == Limits() and base.invoke == "add"
    with pytest.raises(TypeError, match=r"unknown run option.*: invoek"):
        base.updated(invoek="f")


def test_every_run_option_reaches_run_map_and_map_programs(sandbox):
    """A field added to RunOptions is accepted by each entry point, by keyword and whole."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    options = RunOptions(
        invoke="add",
        args=(2, 3),
        limits=Limits.parse(fuel="1e6"),
        grants=Grants(deterministic=True),
        lang="wat",
        recipient=public,
        isolation="thread",
    )
    as_keywords = {f.name: getattr(options, f.name) for f in fields(RunOptions)}
    single = sandbox.run(programs.ADD, **as_keywords)
    mapped = sandbox.map(programs.ADD, [(2, 3)], options, progress=False)
    many = sandbox.map_programs([programs.ADD], options, progress=False)
    for ex in (single, mapped[0], many[0]):
        assert ex.outcome.returns == (5,) and ex.outcome.fuel_limit == 1_000_000
        assert ex.record["recipient"] == key_id(public) and ex.record["deterministic"]
        assert ex.lang == "wat"


def test_the_entry_points_take_options_positionally_and_nothing_else_twice():
    for method in (Sandbox.run, Sandbox.map, Sandbox.map_programs):
        params = inspect.signature(method).parameters
        assert params["options"].kind is inspect.Parameter.POSITIONAL_ONLY
        assert not {f.name for f in fields(RunOptions)} & set(params), method.__name__


def test_a_portable_job_pickles_and_runs_elsewhere(sandbox):
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    job = sandbox.prepare(programs.ADD, RunOptions(invoke="add", args=(4, 5), recipient=public))
    travelled = pickle.loads(pickle.dumps(job.portable()))
    assert travelled.options.recipient is None and travelled.program == job.program
    assert execute(travelled).outcome.returns == (9,)
    assert sandbox.seal(job, execute(travelled).outcome).record["recipient"] == key_id(public)


def test_execute_never_raises_for_the_input_faults():
    missing = execute(Job(Program(b"\0asm\1\0\0\0", "wasm"), RunOptions(invoke="f")))
    assert missing.outcome.status == "error" and "no exported function" in missing.outcome.message
    problem = execute(Job(Program(b"x", "wasm"), RunOptions(), problem="did not compile"))
    assert (problem.outcome.status, problem.outcome.message) == ("error", "did not compile")
    assert problem.error is None
