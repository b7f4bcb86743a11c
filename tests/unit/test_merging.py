"""The one merge rule, as properties: overrides win, dicts merge recursively, lists replace, and the
inputs are never changed."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from airflow_batch_executor.requests.merging import deep_merge

json_leaf = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))
json_tree = st.recursive(
    json_leaf, lambda children: st.dictionaries(st.text(max_size=4), children, max_size=4), max_leaves=12
)
dicts = st.dictionaries(st.text(max_size=4), json_tree, max_size=5)


@given(dicts, dicts)
def test_merge_properties(base, override):
    merged = deep_merge(base, override)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == deep_merge(base[key], value)
        else:
            assert merged[key] == value
    for key in base.keys() - override.keys():
        assert merged[key] == base[key]
    assert deep_merge(merged, override) == merged
    assert deep_merge(base, {}) == base


@given(dicts, dicts)
def test_merge_never_mutates_inputs(base, override):
    before = json.dumps([base, override], sort_keys=True)
    merged = deep_merge(base, override)
    for value in merged.values():
        if isinstance(value, dict):
            value["mutated"] = 1
    assert json.dumps([base, override], sort_keys=True) == before
