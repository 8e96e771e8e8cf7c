"""The wire messages of `wasm_sandbox.wire` agree with openapi.json, with the front end's
types.ts, and with what the CLI really prints."""

import json
import re
import types
import typing
from pathlib import Path

import pytest

from wasm_sandbox import cli, wire
from wasm_sandbox.outcome import STATUSES

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = json.loads((ROOT / "wasm_sandbox" / "jupyter" / "openapi.json").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]
TYPES_TS = (ROOT / "labextension" / "src" / "types.ts").read_text()
MESSAGES = {
    name: value
    for name, value in vars(wire).items()
    if typing.is_typeddict(value) and not name.startswith("_")
}
#: types.ts interface -> wire message, where the name is not ``I`` + the message's name.
TS_NAMES = {"ISealedPart": "SealedPartSummary", "IApiError": "Error", "IListedRecord": "Record"}
#: Keys the front end may rely on although the message in general may omit them.
TS_REFINED = {("IListedRecord", "leaf_index")}  # a listed record always carries its index


# -- Python annotations and schemas, each turned into a set of type names ---------------------


def py_types(annotation) -> set[str]:
    """``int | None`` -> {"integer", "null"}; ``list[str]`` -> {"array<string>"}; ..."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(py_types(a) for a in typing.get_args(annotation)))
    if origin is typing.Literal:
        return {"string{" + ",".join(sorted(typing.get_args(annotation))) + "}"}
    if origin is list:
        return {f"array<{_join(py_types(typing.get_args(annotation)[0]))}>"}
    if origin is dict:
        return {f"map<{_join(py_types(typing.get_args(annotation)[1]))}>"}
    if typing.is_typeddict(annotation):
        return {f"object:{annotation.__name__}"}
    if annotation is typing.Any:  # a component's return value: any JSON
        return {"any"}
    names = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    return {names.get(annotation, repr(annotation))}


def schema_types(schema: dict) -> set[str]:
    """The same names for an OpenAPI schema; an inline object is ``object:inline``."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return {f"object:{name}"} | ({"null"} if SCHEMAS[name].get("nullable") else set())
    out: set[str] = {"null"} if schema.get("nullable") else set()
    if "anyOf" in schema:
        return out.union(*(schema_types(s) for s in schema["anyOf"]))
    if "type" not in schema:  # any JSON value
        return out | {"any"}
    kind = schema["type"]
    if kind == "string" and "enum" in schema:
        out.add("string{" + ",".join(sorted(schema["enum"])) + "}")
    elif kind == "array":
        out.add(f"array<{_join(schema_types(schema['items']))}>")
    elif kind == "object" and "additionalProperties" in schema:
        out.add(f"map<{_join(schema_types(schema['additionalProperties']))}>")
    elif kind == "object":
        out.add("object:inline")
    else:
        out.add(kind)
    return out


def _message_in(annotation):
    """The TypedDict of ``annotation`` (``Replay`` of ``Replay | None``)."""
    (message,) = [a for a in typing.get_args(annotation) or (annotation,) if a is not type(None)]
    return message


def _join(names: set[str]) -> str:
    return "|".join(sorted(names))


def mismatches(message, schema: dict, path: str) -> list[str]:
    """Every way ``message`` (a TypedDict) and ``schema`` differ: keys, required keys, types."""
    hints = typing.get_type_hints(message)
    props, required = schema.get("properties", {}), set(schema.get("required", ()))
    found = []
    if set(hints) != set(props):
        found.append(f"{path}: keys {sorted(set(hints) ^ set(props))} only on one side")
    if set(message.__required_keys__) != required:
        found.append(f"{path}: required {sorted(message.__required_keys__ ^ required)} differ")
    for key in set(hints) & set(props):
        ours, theirs = py_types(hints[key]), schema_types(props[key])
        if "object:inline" in theirs:
            found += mismatches(_message_in(hints[key]), props[key], f"{path}.{key}")
            ours = {t for t in ours if not t.startswith("object:")}
            theirs -= {"object:inline"}
        if "string" in ours:  # a str field may be documented with its values
            theirs = {"string" if t.startswith("string{") else t for t in theirs}
        if ours != theirs:
            found.append(f"{path}.{key}: Python {sorted(ours)} vs openapi {sorted(theirs)}")
    return found


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_openapi_schema_is_a_wire_message_with_the_same_keys_and_types(name):
    assert name in MESSAGES, f"openapi schema {name} has no TypedDict in wasm_sandbox/wire.py"
    assert mismatches(MESSAGES[name], SCHEMAS[name], name) == []


def test_the_comparison_sees_a_wrong_type_a_missing_key_and_a_wrong_required_key():
    class Checkpoint(typing.TypedDict, total=False):
        checkpoint: str
        origin: int
        tree_size: int
        cosignatures: list[str]

    found = mismatches(Checkpoint, SCHEMAS["Checkpoint"], "Checkpoint")
    assert any("keys ['root']" in f for f in found)
    assert any("required" in f for f in found)
    assert any("Checkpoint.origin" in f for f in found)


def test_every_status_is_in_openapi_and_in_types_ts():
    enum = SCHEMAS["Execution"]["properties"]["status"]["enum"]
    assert sorted(enum) == sorted(STATUSES), "update openapi.json's Execution.status enum"
    ts = re.search(r"export type RunStatus =([^;]*);", TYPES_TS)
    assert ts is not None, "types.ts declares no RunStatus"
    assert sorted(re.findall(r"'(\w+)'", ts.group(1))) == sorted(STATUSES)


# -- types.ts ----------------------------------------------------------------------------------


def ts_interfaces() -> dict[str, dict[str, tuple[bool, str]]]:
    """``{interface: {key: (optional, type text)}}`` of types.ts, ``extends`` resolved."""
    found: dict[str, dict[str, tuple[bool, str]]] = {}
    pattern = r"export interface (\w+)(?: extends (\w+))? \{\n(.*?)\n\}"
    for name, base, body in re.findall(pattern, TYPES_TS, re.S):
        fields = dict(found.get(base, {}))
        for key, optional, text in re.findall(r"^  (\w+)(\??): (.+);$", body, re.M):
            fields[key] = (bool(optional), text)
        found[name] = fields
    return found


def ts_types(text: str) -> set[str]:
    """A TypeScript type as the names of `py_types`; TS has one ``number`` for int and float."""
    aliases = {
        name: " ".join(value.split()).removeprefix("| ")
        for name, value in re.findall(r"export type (\w+) =([^;]*);", TYPES_TS)
    }
    out: set[str] = set()
    for part in (p.strip() for p in aliases.get(text, text).split(" | ")):
        if part.endswith("[]"):
            out.add(f"array<{_join(ts_types(part[:-2]))}>")
        elif m := re.fullmatch(r"Record<string, (\w+)>", part):
            out.add(f"map<{_join(ts_types(m.group(1)))}>")
        elif part.startswith("'"):
            out.add("string")
        elif part.startswith("I"):
            out.add("object:" + TS_NAMES.get(part, part[1:]))
        else:
            out.add(part if part in ("string", "number", "boolean", "null") else "?" + part)
    return out


def _as_ts(names: set[str]) -> set[str]:
    return {re.sub(r"integer|string\{[^}]*\}", _ts_word, n) for n in names}


def _ts_word(match: re.Match) -> str:
    return "number" if match.group(0) == "integer" else "string"


@pytest.mark.parametrize("interface", sorted(ts_interfaces()))
def test_every_types_ts_interface_mirrors_a_wire_message(interface):
    name = TS_NAMES.get(interface, interface.removeprefix("I"))
    assert name in MESSAGES, f"types.ts {interface} has no TypedDict {name} in wire.py"
    message = MESSAGES[name]
    hints = typing.get_type_hints(message)
    for key, (optional, text) in ts_interfaces()[interface].items():
        assert key in hints, f"types.ts {interface}.{key} is not in wire.{name}"
        if not optional and (interface, key) not in TS_REFINED:
            assert key in message.__required_keys__, f"{interface}.{key} may be absent: use ?"
        inline = re.fullmatch(r"\{ (.*) \}", text)
        if inline:  # an inline object: its keys must be the nested message's
            nested = typing.get_type_hints(_message_in(hints[key]))
            for item in inline.group(1).split("; "):
                assert item.split(":")[0].rstrip("?") in nested, f"{interface}.{key}: {item}"
        else:
            assert ts_types(text) == _as_ts(py_types(hints[key])), f"{interface}.{key}"


# -- what the CLI prints -----------------------------------------------------------------------


def conforms(value, annotation, path="") -> list[str]:
    """Every place where the JSON ``value`` does not fit ``annotation`` (a wire type)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is typing.Any:
        return []
    if origin in (typing.Union, types.UnionType):
        fits = [conforms(value, a, path) for a in args]
        return [] if any(f == [] for f in fits) else [f"{path}: {value!r} fits no {annotation}"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} not in {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, v in enumerate(value) for p in conforms(v, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        return [p for k, v in value.items() for p in conforms(v, args[1], f"{path}.{k}")]
    if typing.is_typeddict(annotation):
        return _conforms_to_message(value, annotation, path)
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, annotation)
    return [] if ok else [f"{path}: {value!r} is not {annotation}"]


def _conforms_to_message(value, message, path) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: not an object"]
    hints = typing.get_type_hints(message)
    found = [f"{path}: missing {k}" for k in message.__required_keys__ - set(value)]
    found += [f"{path}: unexpected {k}" for k in set(value) - set(hints)]
    for key in set(value) & set(hints):
        found += conforms(value[key], hints[key], f"{path}.{key}")
    return found


def test_conforms_sees_a_missing_key_an_extra_key_and_a_wrong_type():
    good = {"checkpoint": "note", "origin": "o", "tree_size": 1, "root": "00", "cosignatures": []}
    assert conforms(good, wire.Checkpoint) == []
    bad = {"checkpoint": "note", "origin": "o", "tree_size": True, "extra": 1, "cosignatures": []}
    assert set(conforms(bad, wire.Checkpoint)) == {
        ": missing root",
        ": unexpected extra",
        ".tree_size: True is not <class 'int'>",
    }


def run_cli(capsys, *args) -> tuple[int, object]:
    code = cli.main([*map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_what_the_cli_prints_fits_the_wire_messages(home, tmp_path, capsys):
    prog = tmp_path / "f.wat"
    prog.write_text('(module (func (export "f") (result f64) f64.const nan))')
    printed = {
        "run": (wire.Execution, run_cli(capsys, "run", prog, "--invoke", "f")),
        "verify": (wire.Verification, run_cli(capsys, "verify", "last")),
        "verify --all": (wire.CliLogReport, run_cli(capsys, "verify", "--all")),
        "log": (list[wire.Record], run_cli(capsys, "log")),
        "checkpoint": (wire.CliCheckpoint, run_cli(capsys, "checkpoint")),
        "proof": (wire.CliReceipt, run_cli(capsys, "proof", "last")),
        "keys": (wire.CliKeys, run_cli(capsys, "keys")),
        "decrypt": (wire.CliDecrypted, run_cli(capsys, "decrypt", "last")),
        "sign": (wire.CliSigned, run_cli(capsys, "sign", prog, "-o", tmp_path / "f.wasm")),
    }
    for command, (message, (code, value)) in printed.items():
        assert code == 0, command
        assert conforms(value, message, command) == []
    assert printed["run"][1][1]["returns"] == ["NaN"]
    assert printed["decrypt"][1][1]["source_kind"] == "wat"


def test_a_decrypt_that_fails_prints_the_failure_message(home, tmp_path, capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "teacher.pem"
    pem.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    prog = tmp_path / "f.wat"
    prog.write_text('(module (func (export "f")))')
    assert run_cli(capsys, "run", prog, "--invoke", "f", "--recipient", pem)[0] == 0
    code, value = run_cli(capsys, "decrypt", "last")
    assert code == 1 and value["commitments_ok"] is False
    assert conforms(value, wire.CliDecryptFailed, "decrypt") == []


def test_what_the_rest_service_answers_fits_the_wire_messages(home):
    from wasm_sandbox import Sandbox
    from wasm_sandbox.jupyter.server_service import Service, Settings

    with Sandbox(home=home) as sb:
        for value in (1, 2):
            sb.run(f'(module (func (export "f") (result i32) i32.const {value}))', invoke="f")
    service = Service(Settings(home=str(home)))
    try:
        body = (
            b'{"wat": "(module (func (export \\"f\\") (result i32) i32.const 3))", "invoke": "f"}'
        )
        created = service.created(service.submit_run(body).result())
        answers = {
            "POST executions": (wire.CreatedExecution, created),
            "GET executions/{id}": (wire.ExecutionDetail, service.execution("last")),
            "GET executions": (wire.ExecutionPage, service.executions(limit=1, after=-1)),
            "GET checkpoint": (wire.Checkpoint, service.checkpoint()),
            "GET proof/consistency": (wire.ConsistencyProof, service.consistency(1, 2)),
            "GET keys/public": (wire.PublicKeys, service.public_keys()),
            "GET health": (wire.Health, service.health()),
        }
    finally:
        service.close()
    for route, (message, value) in answers.items():
        assert conforms(json.loads(json.dumps(value)), message, route) == []
    assert answers["GET executions"][1]["next_after"] == 0
