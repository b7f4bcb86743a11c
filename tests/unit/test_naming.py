from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from airflow_batch_executor.job_contract import MAX_JOB_NAME_CHARS, MAX_TAG_VALUE_CHARS
from airflow_batch_executor.requests.naming import (
    MAX_MAP_INDEX_DIGITS,
    WorkloadIdentity,
    array_job_name,
    array_name_prefix,
    identity_tags,
    job_name,
    sanitize_tag_value,
)

from .helpers import BATCH_NAME

BATCH_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]*$", re.UNICODE)


def identity(**overrides) -> WorkloadIdentity:
    values = {
        "dag_id": "etl.daily",
        "task_id": "load.users",
        "run_id": "scheduled__2026-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return WorkloadIdentity(**values)


def test_name_is_readable_and_valid():
    name = job_name(identity(try_number=2))
    assert name.startswith("etl_daily-load_users-try2-")
    assert BATCH_NAME.match(name)


def test_map_index_and_prefix_appear():
    name = job_name(identity(map_index=7, try_number=1), prefix="prod.airflow")
    assert name.startswith("prod_airflow-etl_daily-load_users-7-try1-")


def test_each_try_run_and_map_index_gets_its_own_name():
    names = {
        job_name(identity(try_number=1)),
        job_name(identity(try_number=2)),
        job_name(identity(try_number=1, run_id="manual__x")),
        job_name(identity(try_number=1, map_index=0)),
        job_name(identity(try_number=1, map_index=1)),
    }
    assert len(names) == 5


def test_name_is_deterministic():
    assert job_name(identity(try_number=3), "p") == job_name(identity(try_number=3), "p")


def test_long_ids_are_truncated_but_keep_the_unique_tail():
    long_a = identity(dag_id="d" * 300, task_id="a" * 250)
    long_b = identity(dag_id="d" * 300, task_id="a" * 251)
    assert len(job_name(long_a)) == MAX_JOB_NAME_CHARS
    assert job_name(long_a) != job_name(long_b)


def test_leading_non_alphanumeric_is_removed():
    assert BATCH_NAME.match(job_name(identity(dag_id="__private", task_id="_t")))
    assert BATCH_NAME.match(job_name(identity(dag_id="_", task_id="")))


def test_callback_names_and_tags():
    cb = WorkloadIdentity(dag_id="etl", callback_id="0a1b")
    assert job_name(cb).startswith("etl-callback-")
    assert identity_tags(cb) == {"airflow.dag_id": "etl", "airflow.callback_id": "0a1b"}


def test_tags_carry_the_identity():
    tags = identity_tags(identity(map_index=3, try_number=2))
    assert tags == {
        "airflow.dag_id": "etl.daily",
        "airflow.task_id": "load.users",
        "airflow.run_id": "scheduled__2026-01-01T00:00:00+00:00",
        "airflow.try_number": "2",
        "airflow.map_index": "3",
    }


def test_tag_values_are_sanitised_and_bounded():
    assert sanitize_tag_value("a*b?c#d") == "a_b_c_d"
    assert sanitize_tag_value("é ü @:/=+-.") == "é ü @:/=+-."
    assert len(sanitize_tag_value("x" * 1000)) == MAX_TAG_VALUE_CHARS


ids = st.text(min_size=0, max_size=400)


@given(
    dag_id=ids,
    task_id=ids,
    run_id=ids,
    map_index=st.integers(-1, 10**6),
    try_number=st.integers(0, 10**4),
    prefix=st.one_of(st.none(), ids),
)
def test_any_identity_gives_a_valid_batch_name(dag_id, task_id, run_id, map_index, try_number, prefix):
    ident = WorkloadIdentity(
        dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, try_number=try_number
    )
    name = job_name(ident, prefix)
    assert BATCH_NAME.match(name), name
    assert name == job_name(ident, prefix)


@given(st.text(max_size=600))
def test_any_tag_value_is_acceptable(value):
    cleaned = sanitize_tag_value(value)
    assert len(cleaned) <= MAX_TAG_VALUE_CHARS
    assert BATCH_TAG_VALUE.match(cleaned)


def test_a_connection_test_job_is_named_and_tagged_for_its_connection():
    from airflow_batch_executor.requests.naming import team_tags

    test_identity = WorkloadIdentity(
        dag_id="", connection_id="warehouse.pg", connection_test_id="0190c2f6-2a1b-7c3d-9e4f-5a6b7c8d9e0f"
    )
    name = job_name(test_identity, prefix="prod")
    assert name.startswith("prod-connection-test-warehouse_pg-") and BATCH_NAME.match(name)
    other = WorkloadIdentity(dag_id="", connection_id="warehouse.pg", connection_test_id="another-test")
    assert job_name(other, prefix="prod") != name, "each test of a connection gets its own job name"
    assert identity_tags(test_identity) == {
        "airflow.connection_id": "warehouse.pg",
        "airflow.connection_test_id": "0190c2f6-2a1b-7c3d-9e4f-5a6b7c8d9e0f",
    }
    assert team_tags("team_a") == {"airflow.team": "team_a"}
    assert team_tags(None) == {}


def test_an_array_is_named_for_its_task_try_and_map_range():
    name = array_job_name(identity(map_index=3, try_number=2), 3, 41, prefix="prod")
    assert name.startswith("prod-etl_daily-load_users-try2-") and name.endswith("-m3-41")
    assert BATCH_NAME.match(name)


def test_every_array_of_a_try_starts_with_the_prefix_a_restarted_scheduler_lists_and_no_other_does():
    one, two = identity(map_index=0), identity(map_index=9000)
    assert array_name_prefix(one) == array_name_prefix(two)
    assert array_job_name(one, 0, 9) != array_job_name(two, 9000, 9999)
    for name in (array_job_name(one, 0, 9), array_job_name(two, 9000, 9999)):
        assert name.startswith(array_name_prefix(one))
    for other in (identity(try_number=2), identity(run_id="manual__1"), identity(task_id="other")):
        assert array_name_prefix(other) != array_name_prefix(one)
        assert not array_job_name(one, 0, 9).upper().startswith(array_name_prefix(other).upper())


@given(
    dag_id=st.text(min_size=1, max_size=250),
    task_id=st.text(min_size=1, max_size=250),
    first=st.integers(min_value=0, max_value=2**31 - 1),
    span=st.integers(min_value=1, max_value=9_999),
    prefix=st.none() | st.text(max_size=60),
)
def test_any_array_gives_a_valid_batch_name_within_the_limit(dag_id, task_id, first, span, prefix):
    last = min(first + span, 2**31 - 1)
    assert len(str(last)) <= MAX_MAP_INDEX_DIGITS
    one = WorkloadIdentity(dag_id=dag_id, task_id=task_id, run_id="r", map_index=first)
    name = array_job_name(one, first, last, prefix)
    assert len(name) <= MAX_JOB_NAME_CHARS and BATCH_NAME.match(name)
    assert name.startswith(array_name_prefix(one, prefix))
