"""The JSON columns' encoder (orjson, json as fallback) stores the same JSON values as json."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from koppelpunt.store.db import json_dumps

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # includes lone surrogates, which orjson refuses
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_same_json_value_as_the_json_module(value: Any) -> None:
    assert json.loads(json_dumps(value)) == json.loads(json.dumps(value))


def test_headers_as_pairs_and_non_ascii() -> None:
    headers = [("ce_id", "a"), ("ce_source", "urn:vva:koppelpunt-gemeenten")]
    assert json.loads(json_dumps(headers)) == [list(pair) for pair in headers]
    assert json_dumps({"naam": "Súdwest-Fryslân"}) == '{"naam":"Súdwest-Fryslân"}'


def test_lone_surrogate_falls_back_to_escaping() -> None:
    assert json_dumps({"actor": "\udcff"}) == '{"actor": "\\udcff"}'
