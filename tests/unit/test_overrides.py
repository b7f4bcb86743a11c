from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest

from airflow_batch_executor import BatchJobOverrides

from .helpers import build


def test_builds_submit_job_overrides():
    overrides = BatchJobOverrides(
        vcpu=2,
        memory_mib=4096,
        gpu=1,
        timeout=timedelta(hours=1),
        environment={"A": 1},
        job_queue="gpu",
        job_definition="jd-gpu",
        share_identifier="ml",
        scheduling_priority=7,
        tags={"t": "v"},
    )
    assert overrides == {
        "containerOverrides": {
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "4096"},
                {"type": "GPU", "value": "1"},
            ],
            "environment": [{"name": "A", "value": "1"}],
        },
        "timeout": {"attemptDurationSeconds": 3600},
        "schedulingPriorityOverride": 7,
        "jobQueue": "gpu",
        "jobDefinition": "jd-gpu",
        "shareIdentifier": "ml",
        "tags": {"t": "v"},
    }
    assert isinstance(overrides, dict)
    assert BatchJobOverrides() == {}


def requirements(*pairs: tuple[str, str]) -> dict:
    return {"containerOverrides": {"resourceRequirements": [{"type": t, "value": v} for t, v in pairs]}}


def environment(**values: str) -> dict:
    return {"containerOverrides": {"environment": [{"name": n, "value": v} for n, v in values.items()]}}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # vCPU: whole numbers anywhere, 0.25 and 0.5 for Fargate; integral floats are whole numbers
        ({"vcpu": 1}, requirements(("VCPU", "1"))),
        ({"vcpu": 2.0}, requirements(("VCPU", "2"))),
        ({"vcpu": 0.25}, requirements(("VCPU", "0.25"))),
        ({"vcpu": 0.5}, requirements(("VCPU", "0.5"))),
        ({"vcpu": Fraction(1, 4)}, requirements(("VCPU", "0.25"))),
        ({"vcpu": 1_000_000}, requirements(("VCPU", "1000000"))),
        # memory: whole MiB
        ({"memory_mib": 2048}, requirements(("MEMORY", "2048"))),
        ({"memory_mib": 2048.0}, requirements(("MEMORY", "2048"))),
        ({"memory_mib": 1}, requirements(("MEMORY", "1"))),
        # GPU: whole numbers; 0 asks for none
        ({"gpu": 1}, requirements(("GPU", "1"))),
        ({"gpu": 4.0}, requirements(("GPU", "4"))),
        ({"gpu": 0}, {}),
        # scheduling priority: whole numbers 0–9999, sent as an int
        ({"scheduling_priority": 0}, {"schedulingPriorityOverride": 0}),
        ({"scheduling_priority": 9999}, {"schedulingPriorityOverride": 9999}),
        ({"scheduling_priority": 7.0}, {"schedulingPriorityOverride": 7}),
        # environment: strings as they are, numbers through str()
        ({"environment": {"A": "x", "B": ""}}, environment(A="x", B="")),
        ({"environment": {"N": 1, "F": 0.5, "BIG": 10**20}}, environment(N="1", F="0.5", BIG=str(10**20))),
        ({"environment": {}}, {}),
        # tags: the same rule as environment values
        ({"tags": {"team": "data", "n": 3}}, {"tags": {"team": "data", "n": "3"}}),
        ({"tags": {}}, {}),
        # timeout: a timedelta, rounded up to whole seconds
        ({"timeout": timedelta(seconds=60)}, {"timeout": {"attemptDurationSeconds": 60}}),
        ({"timeout": timedelta(seconds=90.2)}, {"timeout": {"attemptDurationSeconds": 91}}),
    ],
)
def test_accepted_values_and_the_overrides_they_produce(kwargs, expected):
    overrides = BatchJobOverrides(**kwargs)
    assert overrides == expected
    assert type(overrides.get("schedulingPriorityOverride", 0)) is int


POSITIVE_VCPU = "use a positive number of vCPUs such as 1 or 2"
FRACTIONAL_VCPU = "use 0.25 or 0.5 (fractional vCPUs run only on Fargate) or a whole number such as 1"
POSITIVE_MIB = "use a positive whole number of MiB such as 2048"
WHOLE_GPUS = "use a whole number of GPUs ≥ 0 such as 1"
PRIORITY = "use a whole number from 0 to 9999 (higher runs first)"
NONE_VALUE = "use a string; leave the name out to not set it"
BOOL_VALUE = 'use the string the program expects, such as "true" or "1"'
OTHER_VALUE = "use a string (or a number, which is sent as str(value))"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vcpu": 0}, f"vcpu=0: {POSITIVE_VCPU}"),
        ({"vcpu": -1}, f"vcpu=-1: {POSITIVE_VCPU}"),
        ({"vcpu": True}, f"vcpu=True: {POSITIVE_VCPU}"),
        ({"vcpu": "2"}, f"vcpu='2': {POSITIVE_VCPU}"),
        ({"vcpu": float("nan")}, f"vcpu=nan: {POSITIVE_VCPU}"),
        ({"vcpu": float("inf")}, f"vcpu=inf: {POSITIVE_VCPU}"),
        ({"vcpu": 1.5}, "vcpu=1.5: use a whole number of vCPUs such as 1 or 2"),
        ({"vcpu": 2.2}, "vcpu=2.2: use a whole number of vCPUs such as 2 or 3"),
        ({"vcpu": 0.3}, f"vcpu=0.3: {FRACTIONAL_VCPU}"),
        ({"vcpu": 0.75}, f"vcpu=0.75: {FRACTIONAL_VCPU}"),
        (
            {"memory_mib": 0.5},
            "memory_mib=0.5: use a whole number of MiB such as 512 (the unit is MiB, not GiB)",
        ),
        ({"memory_mib": 2048.9}, "memory_mib=2048.9: use a whole number of MiB such as 2048"),
        ({"memory_mib": 1.5}, "memory_mib=1.5: use a whole number of MiB such as 1"),
        ({"memory_mib": 0}, f"memory_mib=0: {POSITIVE_MIB}"),
        ({"memory_mib": -1}, f"memory_mib=-1: {POSITIVE_MIB}"),
        ({"memory_mib": True}, f"memory_mib=True: {POSITIVE_MIB}"),
        ({"memory_mib": "2048"}, f"memory_mib='2048': {POSITIVE_MIB}"),
        ({"gpu": 1.5}, f"gpu=1.5: {WHOLE_GPUS}"),
        ({"gpu": -1}, f"gpu=-1: {WHOLE_GPUS}"),
        ({"gpu": True}, f"gpu=True: {WHOLE_GPUS}"),
        ({"gpu": "1"}, f"gpu='1': {WHOLE_GPUS}"),
        ({"scheduling_priority": 7.9}, f"scheduling_priority=7.9: {PRIORITY}"),
        ({"scheduling_priority": -1}, f"scheduling_priority=-1: {PRIORITY}"),
        ({"scheduling_priority": 10000}, f"scheduling_priority=10000: {PRIORITY}"),
        ({"scheduling_priority": "7"}, f"scheduling_priority='7': {PRIORITY}"),
        ({"scheduling_priority": True}, f"scheduling_priority=True: {PRIORITY}"),
        ({"environment": {"A": None}}, f"environment['A']=None: {NONE_VALUE}"),
        ({"environment": {"A": True}}, f"environment['A']=True: {BOOL_VALUE}"),
        ({"environment": {"A": False}}, f"environment['A']=False: {BOOL_VALUE}"),
        ({"environment": {"A": [1]}}, f"environment['A']=[1]: {OTHER_VALUE}"),
        ({"environment": {"A": b"x"}}, f"environment['A']=b'x': {OTHER_VALUE}"),
        ({"environment": {"A": float("nan")}}, f"environment['A']=nan: {OTHER_VALUE}"),
        ({"environment": {1: "x"}}, "environment name 1: use a non-empty string"),
        ({"environment": {"": "x"}}, "environment name '': use a non-empty string"),
        (
            {"environment": ["A=1"]},
            """environment=['A=1']: use a dict of names to string values such as {"NAME": "value"}""",
        ),
        ({"tags": {"owner": None}}, f"tags['owner']=None: {NONE_VALUE}"),
        ({"tags": {"owner": True}}, f"tags['owner']=True: {BOOL_VALUE}"),
        ({"timeout": 3600}, "timeout=3600: use a timedelta such as timedelta(hours=1)"),
        ({"timeout": timedelta(seconds=30)}, "timeout=0:00:30: AWS Batch needs at least 60 seconds"),
    ],
)
def test_invalid_values_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError) as raised:
        BatchJobOverrides(**kwargs)
    assert str(raised.value) == f"BatchJobOverrides {message}"


def test_the_request_the_executor_sends_carries_the_checked_values():
    config = BatchJobOverrides(
        vcpu=1.0, memory_mib=2048.0, environment={"X": "1", "N": 2}, scheduling_priority=3.0
    )
    request = build(config)
    overrides = request["containerOverrides"]
    assert overrides["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "2048"},
    ]
    environment = {entry["name"]: entry["value"] for entry in overrides["environment"]}
    assert environment["X"] == "1" and environment["N"] == "2"
    assert request["schedulingPriorityOverride"] == 3


def test_survives_airflow_serialisation():
    from airflow.serialization.serialized_objects import BaseSerialization

    overrides = BatchJobOverrides(vcpu=1, memory_mib=2048, timeout=timedelta(minutes=5), environment={"N": 1})
    assert BaseSerialization.deserialize(BaseSerialization.serialize(overrides)) == dict(overrides)
