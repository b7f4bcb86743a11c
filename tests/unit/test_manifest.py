"""An array's manifest (recovery/manifest.py): which child runs which mapped instance of which queueing."""

from __future__ import annotations

import json

import pytest

from airflow_batch_executor.recovery.manifest import ArrayChild, ArrayManifest, manifest_key
from airflow_batch_executor.requests.naming import WorkloadIdentity

MANIFEST = ArrayManifest(
    "etl", "load", "run1", 2, (ArrayChild(4, "s-a"), ArrayChild(7, "s-b"), ArrayChild(5, "s-c"))
)


def instance(map_index: int, **overrides) -> WorkloadIdentity:
    values = {"dag_id": "etl", "task_id": "load", "run_id": "run1", "try_number": 2, "map_index": map_index}
    return WorkloadIdentity(**{**values, **overrides})


def test_a_manifest_reads_back_what_was_written_and_holds_no_more():
    body = MANIFEST.to_json()
    assert ArrayManifest.from_json(body) == MANIFEST
    assert set(json.loads(body)) == {"dag_id", "task_id", "run_id", "try_number", "children"}
    assert manifest_key("prefix/array.r1/") == "prefix/array.r1/manifest.json"


@pytest.mark.parametrize(
    "who, submission, index",
    [
        (instance(4), None, 0),
        (instance(7), "s-b", 1),
        (instance(5), "s-c", 2),
        (instance(6), None, None),  # not in this array, though within its range
        (instance(7), "s-other", None),  # another queueing of the same try (requeued after a revoke)
        (instance(7, try_number=3), None, None),
        (instance(7, run_id="run2"), None, None),
        (instance(7, task_id="other"), None, None),
    ],
)
def test_the_child_of_a_mapped_try_is_found_by_its_position(who, submission, index):
    assert MANIFEST.child_index(who, submission) == index


@pytest.mark.parametrize(
    "body", [b"", b"[]", b"{}", b'{"dag_id": "etl"}', MANIFEST.to_json().replace(b"[4,", b'["x",')]
)
def test_anything_else_is_refused(body):
    with pytest.raises(ValueError, match="not an array manifest"):
        ArrayManifest.from_json(body)
