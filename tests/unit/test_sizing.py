"""Table-driven tests for the Fargate / EC2 sizing rules checked before submit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_batch_executor.requests.sizing import (
    FARGATE_MEMORY_BY_VCPU,
    check_resources,
    ec2_vcpu_error,
    ephemeral_storage_error,
    fargate_size_error,
    resource_requirements,
)

# (vCPU, lowest MiB, highest MiB, step) as published for Fargate; 0.25 is not evenly stepped.
FARGATE_ROWS = [
    (0.5, 1024, 4096, 1024),
    (1, 2048, 8192, 1024),
    (2, 4096, 16384, 1024),
    (4, 8192, 30720, 1024),
    (8, 16384, 61440, 4096),
    (16, 32768, 122880, 8192),
]


def test_table_matches_the_published_sizes() -> None:
    assert FARGATE_MEMORY_BY_VCPU[0.25] == (512, 1024, 2048)
    for vcpu, low, high, step in FARGATE_ROWS:
        assert FARGATE_MEMORY_BY_VCPU[vcpu] == tuple(range(low, high + 1, step))


VALID_PAIRS = [(0.25, 512), (0.25, 1024), (0.25, 2048)] + [
    pair for vcpu, low, high, step in FARGATE_ROWS for pair in ((vcpu, low), (vcpu, low + step), (vcpu, high))
]


@pytest.mark.parametrize(("vcpu", "memory"), VALID_PAIRS)
def test_valid_fargate_sizes(vcpu: float, memory: int) -> None:
    assert fargate_size_error(vcpu, memory) is None


INVALID_PAIRS = [(0.25, 256), (0.25, 1536), (0.25, 3072), (0.25, 4096)] + [
    pair
    for vcpu, low, high, step in FARGATE_ROWS
    for pair in (
        (vcpu, low - step),  # one step below the range
        (vcpu, high + step),  # one step above the range
        (vcpu, low + step // 2),  # between two steps
        (vcpu, low + 1),  # off by one MiB
    )
]


@pytest.mark.parametrize(("vcpu", "memory"), INVALID_PAIRS)
def test_invalid_fargate_sizes_name_the_pair_and_the_valid_range(vcpu: float, memory: int) -> None:
    error = fargate_size_error(vcpu, memory)
    assert error is not None
    assert f"vCPU {vcpu:g} with {memory} MiB is not a valid Fargate size" in error
    assert f"with {vcpu:g} vCPU use " in error
    assert "nearest: " in error


@pytest.mark.parametrize(
    ("vcpu", "memory", "expected"),
    [
        (
            1,
            1024,
            (
                "vCPU 1 with 1024 MiB is not a valid Fargate size; "
                "with 1 vCPU use 2048–8192 MiB in steps of 1024 (nearest: 2048 MiB), "
                "or for 1024 MiB use 0.25 or 0.5 vCPU"
            ),
        ),
        (
            0.25,
            1536,
            (
                "vCPU 0.25 with 1536 MiB is not a valid Fargate size; "
                "with 0.25 vCPU use 512, 1024 or 2048 MiB (nearest: 1024 or 2048 MiB)"
            ),
        ),
        (
            8,
            20000,
            (
                "vCPU 8 with 20000 MiB is not a valid Fargate size; "
                "with 8 vCPU use 16384–61440 MiB in steps of 4096 (nearest: 16384 or 20480 MiB)"
            ),
        ),
        (
            3,
            8192,
            (
                "vCPU 3 is not a valid Fargate size; Fargate accepts 0.25, 0.5, 1, 2, 4, 8 or 16 vCPU, "
                "and for 8192 MiB use 1, 2 or 4 vCPU"
            ),
        ),
        (0.1, 300, "vCPU 0.1 is not a valid Fargate size; Fargate accepts 0.25, 0.5, 1, 2, 4, 8 or 16 vCPU"),
    ],
)
def test_fargate_messages(vcpu: float, memory: int, expected: str) -> None:
    assert fargate_size_error(vcpu, memory) == expected


@pytest.mark.parametrize(
    ("vcpu", "ok"),
    [
        (1, True),
        (1.0, True),
        (2, True),
        (96, True),
        (0.5, False),
        (0.25, False),
        (1.5, False),
        (0, False),
        (-1, False),
        (float("nan"), False),
        (float("inf"), False),
    ],
)
def test_ec2_vcpu(vcpu: float, ok: bool) -> None:
    error = ec2_vcpu_error(vcpu)
    assert (error is None) is ok
    if not ok:
        assert "whole number of vCPUs, at least 1" in error


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        (20, False),
        (21, True),
        (100, True),
        (200, True),
        (201, False),
        (0, False),
        (-5, False),
        (21.5, False),
        (True, False),
    ],
)
def test_ephemeral_storage(size: Any, ok: bool) -> None:
    error = ephemeral_storage_error(size)
    assert (error is None) is ok
    if not ok:
        assert "21 to 200 GiB" in error


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]},
            {"VCPU": "1", "MEMORY": "2048"},
        ),
        (
            {"resourceRequirements": [{"type": "GPU", "value": "1"}, {"type": "vcpu", "value": " 2 "}]},
            {"GPU": "1", "VCPU": "2"},
        ),
        ({"vcpus": 2, "memory": 4096}, {"VCPU": "2", "MEMORY": "4096"}),
        (
            {"vcpus": 2, "memory": 4096, "resourceRequirements": [{"type": "MEMORY", "value": "8192"}]},
            {"VCPU": "2", "MEMORY": "8192"},
        ),
        ({"resourceRequirements": [None, "junk", {"type": "VCPU"}, {"value": "3"}]}, {}),
        ({"resourceRequirements": None, "vcpus": None}, {}),
        ({}, {}),
    ],
)
def test_resource_requirements(props: dict[str, Any], expected: dict[str, str]) -> None:
    assert resource_requirements(props) == expected


@pytest.mark.parametrize(
    ("platform", "requirements", "storage", "expected"),
    [
        ("FARGATE", {"VCPU": "1", "MEMORY": "2048"}, None, []),
        ("FARGATE", {"VCPU": "0.25", "MEMORY": "512"}, 21, []),
        ("FARGATE_SPOT", {"VCPU": "16", "MEMORY": "122880"}, 200, []),
        (
            "fargate",
            {"VCPU": "1", "MEMORY": "1024"},
            None,
            ["vCPU 1 with 1024 MiB is not a valid Fargate size"],
        ),
        ("FARGATE", {"VCPU": "3"}, None, ["vCPU 3 is not a valid Fargate size"]),
        ("FARGATE", {"VCPU": "1", "MEMORY": "2048", "GPU": "1"}, None, ["GPUs are not supported on Fargate"]),
        ("FARGATE", {"VCPU": "1", "MEMORY": "2048"}, 20, ["ephemeral storage of 20 GiB"]),
        ("FARGATE", {"VCPU": "1", "MEMORY": "2048"}, 201, ["ephemeral storage of 201 GiB"]),
        ("FARGATE", {"VCPU": "one", "MEMORY": "2048"}, None, ["VCPU value 'one' is not a positive number"]),
        ("FARGATE", {"VCPU": "1", "MEMORY": "2GB"}, None, ["MEMORY value '2GB' is not a positive number"]),
        ("FARGATE", {"VCPU": "1", "MEMORY": "2048.5"}, None, ["MEMORY value '2048.5' is not a whole number"]),
        ("FARGATE", {"VCPU": "nan", "MEMORY": "2048"}, None, ["VCPU value 'nan' is not a positive number"]),
        (
            "FARGATE",
            {"VCPU": "2", "MEMORY": "1024", "GPU": "x"},
            500,
            [
                "GPU value 'x'",
                "GPUs are not supported on Fargate",
                "vCPU 2 with 1024 MiB",
                "ephemeral storage of 500",
            ],
        ),
        ("EC2", {"VCPU": "4", "MEMORY": "3000", "GPU": "1"}, None, []),
        ("SPOT", {"VCPU": "2", "MEMORY": "1000"}, None, []),
        (
            "EC2",
            {"VCPU": "0.5", "MEMORY": "1024"},
            None,
            ["vCPU 0.5 is not valid on an EC2 compute environment"],
        ),
        ("EC2", {"VCPU": "-1"}, None, ["VCPU value '-1' is not a positive number"]),
        ("EC2", {"GPU": "half"}, None, ["GPU value 'half' is not a positive number"]),
        ("EC2", {"VCPU": "2", "MEMORY": "4096"}, 50, ["ephemeral storage can only be set for Fargate jobs"]),
        ("EC2", {}, None, []),
        ("LAMBDA", {"VCPU": "1"}, None, ["platform 'LAMBDA' is not known; use FARGATE or EC2"]),
    ],
)
def test_check_resources(
    platform: str, requirements: dict[str, str], storage: int | None, expected: list[str]
) -> None:
    problems = check_resources(platform, requirements, storage)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


@given(st.sampled_from(sorted(FARGATE_MEMORY_BY_VCPU)), st.integers(min_value=-1024, max_value=140_000))
def test_fargate_size_error_is_none_exactly_for_listed_sizes(vcpu: float, memory: int) -> None:
    assert (fargate_size_error(vcpu, memory) is None) == (memory in FARGATE_MEMORY_BY_VCPU[vcpu])


@given(
    st.sampled_from(sorted(FARGATE_MEMORY_BY_VCPU)),
    st.sampled_from(sorted({m for ms in FARGATE_MEMORY_BY_VCPU.values() for m in ms})),
)
def test_fargate_size_error_on_listed_memory_values(vcpu: float, memory: int) -> None:
    assert (fargate_size_error(vcpu, memory) is None) == (memory in FARGATE_MEMORY_BY_VCPU[vcpu])
