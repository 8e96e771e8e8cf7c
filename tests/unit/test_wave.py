"""WAVE text read and written by type, the Python value mapping, and WIT type text."""

import math

import pytest

from wasm_sandbox import wave
from wasm_sandbox.wit import parse_type

POINT = "record { x: s32, y: s32 }"
# (type, WAVE text, Python value): each reads to the value and the value prints as the text
CASES = [
    ("u32", "5", 5),
    ("s64", "-9223372036854775808", -(1 << 63)),
    ("bool", "true", True),
    ("f64", "1.5", 1.5),
    ("f32", "-inf", -math.inf),
    ("char", "'x'", "x"),
    ("string", '"hi \\"you\\"\\n"', 'hi "you"\n'),
    ("string", '"\\u{7}😀"', "\x07😀"),
    ("list<u32>", "[1, 2, 3]", [1, 2, 3]),
    ("list<string>", "[]", []),
    ("tuple<u8, char, string>", "(1, 'a', \"b\")", (1, "a", "b")),
    (POINT, "{x: 1, y: -2}", {"x": 1, "y": -2}),
    ("record {}", "{:}", {}),
    ("option<u32>", "some(3)", 3),
    ("option<u32>", "none", None),
    ("option<option<u32>>", "some(none)", {"some": None}),
    ("result<u32, string>", "ok(5)", {"ok": 5}),
    ("result<u32, string>", 'err("bad")', {"err": "bad"}),
    ("result", "err", {"err": None}),
    ("result<_, string>", "ok", {"ok": None}),
    ("enum { red, green, blue }", "green", "green"),
    ("variant { empty, circle(f64) }", "circle(2.0)", {"circle": 2.0}),
    ("variant { empty, circle(f64) }", "empty", {"empty": None}),
    ("variant { none, some(u8) }", "%none", {"none": None}),
    ("flags { read, write, exec }", "{read, exec}", ["read", "exec"]),
    ("flags { read, write }", "{}", []),
]


@pytest.mark.parametrize(("kind", "text", "value"), CASES)
def test_wave_reads_and_writes_each_kind(kind, text, value):
    ty = parse_type(kind)
    assert str(ty) == kind  # WIT type text round-trips
    assert wave.parse(text, ty) == value
    assert wave.show(value, ty) == text


def test_whitespace_and_trailing_commas_are_accepted():
    assert wave.parse(" [ 1 ,2, ] ", parse_type("list<u8>")) == [1, 2]
    assert wave.parse("{y: 2, x: 1,}", parse_type(POINT)) == {"x": 1, "y": 2}


def test_nan_reads_and_prints():
    assert math.isnan(wave.parse("nan", parse_type("f64")))
    assert wave.show(math.nan, parse_type("f32")) == "nan"


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("u32", "-1", "-1 is out of range for u32"),
        ("u8", "256", "out of range for u8"),
        ("u32", "1.5", "expected an integer (u32)"),
        ("u32", '"5"', "expected an integer (u32) at column 1"),
        ("string", "bob", 'expected a string in " quotes'),
        ("char", "'ab'", "one character"),
        (POINT, "{x: 1}", "missing field 'y'"),
        (POINT, "{x: 1, y: 2, z: 3}", "no field 'z'"),
        ("option<u32>", "3", "expected some(...) or none"),
        ("result<u32, string>", "fine(1)", "expected a case of ok, err"),
        ("enum { red }", "blue", "expected one of red"),
        ("flags { a, b }", "{c}", "no flag 'c'"),
        ("u32", "5 6", "unexpected '6' after the value"),
        ("list<u32>", "[1, 2", "expected ']'"),
        ("string", '"\\q"', "expected an escape"),
        ("own<resource>", "1", "cannot pass between the host and a component"),
    ],
)
def test_bad_wave_says_what_and_where(kind, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        wave.parse(text, parse_type(kind))


def test_value_of_takes_wave_python_values_and_wave_strings():
    point = parse_type(POINT)
    assert wave.value_of({"x": 1, "y": 2}, point) == {"x": 1, "y": 2}
    assert wave.value_of("{x: 1, y: 2}", point) == {"x": 1, "y": 2}  # a str for a record: WAVE
    assert wave.value_of("bob", parse_type("string")) == "bob"  # a str for a string: itself
    assert wave.value_of(wave.Wave('"bob"'), parse_type("string")) == "bob"
    assert wave.value_of("red", parse_type("variant { red, blue(u8) }")) == {"red": None}
    assert wave.value_of({"read"}, parse_type("flags { read, write }")) == ["read"]
    for bad, kind in [(True, "u32"), (5, "string"), ({"x": 1}, POINT), ("x", "u32")]:
        with pytest.raises(ValueError):
            wave.value_of(bad, parse_type(kind))


def test_to_json_turns_tuples_into_lists_and_keeps_non_finite_floats():
    assert wave.to_json((1, [math.inf, {"a": (2,)}])) == [1, ["Infinity", {"a": [2]}]]
    assert wave.to_json(math.nan) == "NaN"


def test_type_text_that_is_no_type_is_refused():
    for text in ("u33", "list<u8", "record { x }", "u32 u32"):
        with pytest.raises(ValueError):
            parse_type(text)
