"""The fast canonical-JSON path gives exactly the bytes of the rfc8785 package."""

import string

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from wasm_sandbox.envelope import canonical

KEYS = st.text(alphabet=string.printable, max_size=8) | st.text(max_size=4)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_same_bytes_as_rfc8785(value):
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # not representable (a lone surrogate, say): ours must refuse too
        with pytest.raises(Exception):  # noqa: B017
            canonical(value)
        return
    assert canonical(value) == expected
