"""Hypothesis strategies shared by the domain tests."""

from __future__ import annotations

from hypothesis import strategies as st

from switchyard.domain.models import JSONValue

_scalars: st.SearchStrategy[JSONValue] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)

json_values: st.SearchStrategy[JSONValue] = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value, None (no value) included."""

__all__ = ["json_values"]
