import pytest

from wasm_sandbox import DirGrant, Grants, Limits, LimitsError
from wasm_sandbox.limits import UNLIMITED_FUEL, parse_count, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("65536", 65536),
        ("64MiB", 64 << 20),
        ("1.5KiB", 1536),
        ("1GB", 10**9),
        ("16pages", 16 << 16),
        ("2 kb", 2000),
        (4096, 4096),
    ],
)
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("2s", 2.0), ("500ms", 0.5), ("1min", 60.0), ("0.25", 0.25), (3, 3.0)]
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("1e7", 10**7), ("10_000", 10000), (5, 5)])
def test_counts(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_size, "12 parsecs"),
        (parse_size, "-1"),
        (parse_duration, "0s"),
        (parse_duration, "soon"),
        (parse_count, "1e7MiB"),
        (parse_count, "inf"),
        (parse_size, True),
    ],
)
def test_bad_values_name_the_problem(parser, text):
    with pytest.raises(LimitsError) as err:
        parser(text, "fuel")
    assert str(err.value).startswith("fuel:")


def test_default_limits_are_finite_and_safe():
    limits = Limits()
    assert 0 < limits.fuel < 10**12
    assert 0 < limits.memory <= 1 << 30
    assert 0 < limits.timeout <= 60
    assert 0 < limits.output <= 16 << 20


def test_parse_keeps_base_and_rejects_unknown():
    base = Limits.parse(fuel="1e6")
    assert Limits.parse(base, timeout="2s") == Limits(fuel=10**6, timeout=2.0)
    with pytest.raises(LimitsError, match="unknown limit 'fule'"):
        Limits.parse(fule=1)


def test_limits_are_frozen_and_validated():
    with pytest.raises(LimitsError):
        Limits(fuel=-1)
    with pytest.raises(AttributeError):
        Limits().fuel = 5  # type: ignore[misc]


def test_capped_and_record_round_trip():
    capped = Limits.parse(fuel="1e12", timeout="100s").capped(Limits())
    assert capped.fuel == Limits().fuel and capped.timeout == Limits().timeout
    assert Limits.from_record(Limits().to_record()) == Limits()


def test_default_grants_grant_nothing():
    grants = Grants()
    assert grants.dirs == () and grants.env == () and grants.argv == () and grants.stdin == b""


@pytest.mark.parametrize(
    ("spec", "grant"),
    [
        ("data:/d", DirGrant("data", "/d", False)),
        ("data:/d:rw", DirGrant("data", "/d", True)),
        ("/srv/x:ro", DirGrant("/srv/x", "/x", False)),
    ],
)
def test_dir_grants_are_read_only_unless_asked(spec, grant):
    assert DirGrant.parse(spec) == grant


def test_grant_parsing_errors():
    with pytest.raises(LimitsError, match="NAME=VALUE"):
        Grants.parse(env=["NOVALUE"])
    with pytest.raises(LimitsError, match="--dir"):
        DirGrant.parse("a:b:c:d")


def test_grants_payload_round_trip():
    grants = Grants.parse(dirs=["/tmp:/t:rw"], env={"A": "1"}, argv=["x"], stdin="in")
    assert "stdin" not in grants.to_payload()  # sealed as raw bytes beside the JSON
    assert Grants.from_payload(grants.to_payload(), b"in") == grants


def test_nul_characters_are_refused():
    from wasm_sandbox import GrantError

    with pytest.raises(LimitsError, match="NUL"):
        DirGrant.parse("/tmp\0x")
    with pytest.raises(GrantError, match="NUL"):
        Grants.parse(argv=["a\0b"]).check()


def test_fuel_none_is_no_fuel_limit_and_keeps_the_clock():
    limits = Limits.parse(fuel="none", timeout="2s")
    assert limits.fuel == UNLIMITED_FUEL and limits.timeout == 2.0
    assert Limits.parse(fuel="None").fuel == UNLIMITED_FUEL
    assert Limits.from_record(limits.to_record()) == limits


def test_fuel_beyond_what_the_record_holds_points_to_none():
    with pytest.raises(LimitsError, match="give none for no limit"):
        Limits.parse(fuel="1e17")


@pytest.mark.parametrize(
    ("name", "text", "examples"),
    [
        ("fuel", "lots", "1e7, 10_000, none"),
        ("fuel", "5MiB", "1e7, 10_000, none"),
        ("memory", "lots", "64MiB"),
        ("memory", "5 parsecs", "64MiB"),
        ("timeout", "soon", "500ms, 2s"),
        ("timeout", "5 fortnights", "500ms, 2s"),
        ("timeout", "0", "500ms, 2s"),
        ("instances", "many", "1e7"),
    ],
)
def test_each_error_shows_examples_of_its_own_unit(name, text, examples):
    with pytest.raises(LimitsError) as err:
        Limits.parse(**{name: text})
    message = str(err.value)
    assert message.startswith(f"{name}:") and examples in message
    foreign = {"fuel": "MiB", "memory": "ms", "timeout": "MiB", "instances": "ms"}[name]
    assert foreign not in message.split("(", 1)[1]
