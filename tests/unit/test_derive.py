"""Derived job definitions: parsing, derivation, names, platform checks, the role allow-list, and a task
placed on its derived definition. The registry is tested in test_registry.py, pruning in test_prune.py."""

from __future__ import annotations

import copy
import re

import pytest

from airflow_batch_executor import BatchJobOverrides, EfsVolume, HostVolume
from airflow_batch_executor.definitions.derive import (
    BASE_TAG,
    DEFINITION_TEAM_TAG,
    HASH_TAG,
    MANAGED_TAG,
    definition_overrides,
    definition_problems,
    derive,
    derived_name,
)
from airflow_batch_executor.definitions.registry import DefinitionRegistry
from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.options import load_options
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.task_specs import JobSpec

from .helpers import (
    BATCH_NAME,
    COMMAND,
    EC2_BASE,
    FARGATE_BASE,
    IDENTITY,
    REQUIRED,
    ROLE,
    FakeConf,
    JobDefinitionsGateway,
    options,
)


def props(**fields):
    return {"jobDefinitionOverrides": {"containerProperties": fields}}


# ---------------------------------------------------------------- BatchJobOverrides


def test_typed_fields_become_container_properties():
    config = BatchJobOverrides(
        vcpu=1,
        image="repo/etl:2",
        job_role_arn=ROLE,
        execution_role_arn="arn:aws:iam::123456789012:role/exec-2",
        volumes=[
            EfsVolume("data", "fs-0123", "/mnt/data", root_directory="/exports", read_only=True),
            HostVolume("scratch", "/scratch"),
        ],
        shared_memory_mib=1024,
        ulimits={"nofile": 65536, "nproc": (512, 1024)},
        ephemeral_storage_gib=50,
        log_options={"awslogs-stream-prefix": "etl"},
    )
    assert config["containerOverrides"] == {"resourceRequirements": [{"type": "VCPU", "value": "1"}]}
    assert config["jobDefinitionOverrides"] == {
        "containerProperties": {
            "image": "repo/etl:2",
            "jobRoleArn": ROLE,
            "executionRoleArn": "arn:aws:iam::123456789012:role/exec-2",
            "volumes": [
                {
                    "name": "data",
                    "efsVolumeConfiguration": {"fileSystemId": "fs-0123", "rootDirectory": "/exports"},
                },
                {"name": "scratch"},
            ],
            "mountPoints": [
                {"sourceVolume": "data", "containerPath": "/mnt/data", "readOnly": True},
                {"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False},
            ],
            "linuxParameters": {"sharedMemorySize": 1024},
            "ulimits": [
                {"name": "nofile", "softLimit": 65536, "hardLimit": 65536},
                {"name": "nproc", "softLimit": 512, "hardLimit": 1024},
            ],
            "ephemeralStorage": {"sizeInGiB": 50},
            "logConfiguration": {"options": {"awslogs-stream-prefix": "etl"}},
        }
    }
    assert definition_overrides(config) == config["jobDefinitionOverrides"]["containerProperties"]


def test_an_efs_access_point_turns_on_transit_encryption_and_iam():
    volume = EfsVolume("data", "fs-1", "/mnt/data", access_point_id="fsap-1").volume()
    assert volume["efsVolumeConfiguration"] == {
        "fileSystemId": "fs-1",
        "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": "fsap-1"},
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image": ""}, "image=''"),
        ({"image": " repo/x"}, "image=' repo/x'"),
        ({"job_role_arn": "airflow-etl"}, "job_role_arn='airflow-etl': use an IAM role ARN"),
        ({"execution_role_arn": "arn:aws:iam::1:user/x"}, "execution_role_arn='arn:aws:iam::1:user/x'"),
        ({"volumes": {"name": "x"}}, "volumes={'name': 'x'}: use a list"),
        ({"volumes": [{"name": "x"}]}, "volumes={'name': 'x'}: use EfsVolume(...) or HostVolume(...)"),
        ({"volumes": [HostVolume("a", "/a"), HostVolume("a", "/b")]}, "volumes='a': give each volume"),
        ({"shared_memory_mib": 0}, "shared_memory_mib=0: use a positive whole number of MiB"),
        ({"shared_memory_mib": 1.5}, "shared_memory_mib=1.5"),
        ({"ulimits": {"files": 1}}, "ulimits='files': use one of core, cpu"),
        ({"ulimits": {"nofile": (10, 5)}}, "ulimits={'nofile': (10, 5)}: use a whole number ≥ 0"),
        ({"ulimits": [("nofile", 1)]}, "ulimits=[('nofile', 1)]: use a dict"),
        ({"ephemeral_storage_gib": 20}, "ephemeral_storage_gib=20: use a whole number of GiB from 21 to 200"),
        (
            {"ephemeral_storage_gib": 201},
            "ephemeral_storage_gib=201: use a whole number of GiB from 21 to 200",
        ),
        ({"log_driver": "stdout"}, "log_driver='stdout': use one of awslogs"),
        ({"log_options": {"k": None}}, "log_options['k']=None"),
    ],
)
def test_invalid_definition_fields_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError) as raised:
        BatchJobOverrides(**kwargs)
    assert str(raised.value).startswith(f"BatchJobOverrides {message}")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EfsVolume("d", "1234", "/mnt"), "volumes='1234': use an EFS file system id"),
        (lambda: EfsVolume("d", "fs-1", "mnt"), "volumes='mnt': use an absolute container_path"),
        (lambda: EfsVolume("d.x", "fs-1", "/mnt"), "volumes='d.x': name each volume"),
        (lambda: EfsVolume("d", "fs-1", "/m", access_point_id="ap-1"), "volumes='ap-1'"),
        (lambda: HostVolume("d", "/m", source_path="data"), "volumes='data': use an absolute host"),
        (
            lambda: EfsVolume("d", "fs-1", "/m", root_directory="/x", access_point_id="fsap-1"),
            "volumes='/x': leave root_directory out with access_point_id",
        ),
    ],
)
def test_invalid_volumes_fail_when_the_dag_is_parsed(make, message):
    with pytest.raises(ValueError) as raised:
        make()
    assert str(raised.value).startswith(f"BatchJobOverrides {message}")


# ---------------------------------------------------------------- the raw spelling


@pytest.mark.parametrize("config", [None, {}, {"containerOverrides": {}}, {"jobDefinitionOverrides": None}])
def test_no_definition_overrides(config):
    assert definition_overrides(config) == {}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"jobDefinitionOverrides": {"image": "x"}}, "must be a dict with the one key containerProperties"),
        ({"jobDefinitionOverrides": "x"}, "must be a dict with the one key containerProperties"),
        (props(command=["x"]), "sets command, which SubmitJob overrides"),
        (props(environment=[], image="x"), "sets environment, which SubmitJob overrides"),
        (props(imag="x"), 'is not valid: Unknown parameter: "imag", must be one of: image,'),
        (props(ulimits=[{"name": "nofile"}]), 'Missing required parameter in ulimits[0]: "hardLimit"'),
        (props(ephemeralStorage={"sizeInGiB": "50"}), "ephemeralStorage.sizeInGiB"),
    ],
)
def test_invalid_raw_definition_overrides_name_the_field(config, message):
    with pytest.raises(TaskConfigError) as raised:
        definition_overrides(config)
    assert message in str(raised.value)


# ---------------------------------------------------------------- derivation


def test_only_the_named_fields_change():
    derived = derive(FARGATE_BASE, {"image": "repo/etl:2", "jobRoleArn": ROLE})
    request = derived.register_request
    base_properties = FARGATE_BASE["containerProperties"]
    assert request["containerProperties"] == {**base_properties, "image": "repo/etl:2", "jobRoleArn": ROLE}
    for field in ("type", "parameters", "platformCapabilities", "propagateTags", "retryStrategy"):
        assert request[field] == FARGATE_BASE[field]
    assert "revision" not in request and "status" not in request and "jobDefinitionArn" not in request
    assert FARGATE_BASE["containerProperties"]["image"] == "repo/airflow:3.3.2", "the base is not mutated"


def test_nested_fields_merge_and_lists_replace():
    derived = derive(
        FARGATE_BASE,
        {
            "logConfiguration": {"options": {"awslogs-stream-prefix": "etl"}},
            "volumes": [{"name": "v"}],
            "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}],
        },
    )
    properties = derived.register_request["containerProperties"]
    assert properties["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/aws/batch/job", "awslogs-stream-prefix": "etl"},
    }
    assert properties["volumes"] == [{"name": "v"}]


def test_the_name_is_the_base_name_plus_a_stable_hash_of_the_content():
    first = derive(FARGATE_BASE, {"image": "repo/etl:2", "jobRoleArn": ROLE})
    reordered = derive(copy.deepcopy(FARGATE_BASE), {"jobRoleArn": ROLE, "image": "repo/etl:2"})
    assert first.name == reordered.name == f"airflow-worker-{first.digest}"
    assert re.fullmatch(r"[0-9a-f]{12}", first.digest)
    assert (
        first.name
        == "airflow-worker-" + derive(FARGATE_BASE, {"image": "repo/etl:2", "jobRoleArn": ROLE}).digest
    )
    assert derive(FARGATE_BASE, {"image": "repo/etl:3"}).name != first.name


def test_a_new_base_revision_with_other_content_yields_another_name():
    changed = copy.deepcopy(FARGATE_BASE)
    changed["containerProperties"]["environment"] = [{"name": "A", "value": "2"}]
    changed["revision"] = 8
    assert derive(changed, {"image": "x"}).name != derive(FARGATE_BASE, {"image": "x"}).name
    same_content = {**copy.deepcopy(FARGATE_BASE), "revision": 9, "jobDefinitionArn": "arn:...:9"}
    assert derive(same_content, {"image": "x"}).name == derive(FARGATE_BASE, {"image": "x"}).name


@pytest.mark.parametrize("base_name", ["a", "airflow-worker", "w" * 128, "A_b-C" * 25])
def test_names_follow_batch_rules(base_name):
    derived = derive({**FARGATE_BASE, "jobDefinitionName": base_name}, {"image": "x"})
    assert BATCH_NAME.match(derived.name)
    assert len(derived.name) <= 128
    assert derived.name.endswith("-" + derived.digest)
    assert derived_name(base_name, derived.digest).startswith(base_name[:100])


def test_managed_tags_name_the_base_and_hash_and_keep_the_base_tags():
    base = {**FARGATE_BASE, "tags": {"team": "data", MANAGED_TAG: "true", HASH_TAG: "old"}}
    derived = derive(base, {"image": "x"})
    assert derived.register_request["tags"] == {
        "team": "data",
        MANAGED_TAG: "true",
        BASE_TAG: "airflow-worker",
        HASH_TAG: derived.digest,
    }


def test_log_options_need_a_driver_from_the_base_or_the_task():
    base = copy.deepcopy(FARGATE_BASE)
    del base["containerProperties"]["logConfiguration"]
    [problem] = definition_problems(derive(base, {"logConfiguration": {"options": {"a": "b"}}}))
    assert "logConfiguration.logDriver is not set" in problem
    with_driver = {"logConfiguration": {"logDriver": "awslogs", "options": {"a": "b"}}}
    assert definition_problems(derive(base, with_driver)) == []


def test_a_definition_without_container_properties_cannot_be_derived():
    base = {k: v for k, v in FARGATE_BASE.items() if k != "containerProperties"}
    with pytest.raises(TaskConfigError, match="not a single-container definition"):
        derive({**base, "nodeProperties": {}}, {"image": "x"})


# ---------------------------------------------------------------- platform checks


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"ephemeralStorage": {"sizeInGiB": 300}},
            "ephemeralStorage.sizeInGiB: ephemeral storage of 300 GiB",
        ),
        ({"ephemeralStorage": {"sizeInGiB": 300}}, "use a whole number from 21 to 200 GiB"),
        (
            {"ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 1}]},
            "ulimits are not applicable on Fargate",
        ),
        ({"linuxParameters": {"sharedMemorySize": 64}}, "linuxParameters.sharedMemorySize is not applicable"),
        ({"privileged": True}, "privileged containers are not allowed on Fargate"),
        (
            {
                "volumes": [{"name": "h", "host": {"sourcePath": "/data"}}],
                "mountPoints": [{"sourceVolume": "h", "containerPath": "/d"}],
            },
            "volume 'h' mounts a host path, which Fargate does not allow",
        ),
        (
            {
                "volumes": [{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
                "mountPoints": [{"sourceVolume": "e", "containerPath": "/e"}],
                "fargatePlatformConfiguration": {"platformVersion": "1.3.0"},
            },
            (
                "EFS volumes need Fargate platform version 1.4.0 or later; "
                "fargatePlatformConfiguration.platformVersion is '1.3.0': use 1.4.0 or LATEST"
            ),
        ),
        (
            {"mountPoints": [{"sourceVolume": "missing", "containerPath": "/m"}]},
            "uses volume 'missing', which is not among the definition's volumes (none)",
        ),
    ],
)
def test_fargate_rejects_fields_it_cannot_run(overrides, message):
    problems = definition_problems(derive(FARGATE_BASE, overrides))
    assert any(message in problem for problem in problems), problems


@pytest.mark.parametrize(
    "overrides",
    [
        {"ephemeralStorage": {"sizeInGiB": 21}},
        {"ephemeralStorage": {"sizeInGiB": 200}},
        {
            "volumes": [{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}, {"name": "tmp"}],
            "mountPoints": [
                {"sourceVolume": "e", "containerPath": "/e"},
                {"sourceVolume": "tmp", "containerPath": "/tmp/x"},
            ],
            "fargatePlatformConfiguration": {"platformVersion": "1.4.0"},
        },
        {"image": "x", "jobRoleArn": ROLE},
    ],
)
def test_fargate_accepts_what_it_can_run(overrides):
    assert definition_problems(derive(FARGATE_BASE, overrides)) == []


def test_ec2_takes_ulimits_shared_memory_and_host_volumes_but_no_ephemeral_storage():
    ec2 = derive(
        EC2_BASE,
        {
            "ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 1}],
            "linuxParameters": {"sharedMemorySize": 64},
            "volumes": [{"name": "h", "host": {"sourcePath": "/data"}}],
            "mountPoints": [{"sourceVolume": "h", "containerPath": "/d"}],
        },
    )
    assert definition_problems(ec2) == []
    [problem] = definition_problems(derive(EC2_BASE, {"ephemeralStorage": {"sizeInGiB": 50}}))
    assert "ephemeralStorage is only available on Fargate" in problem


# ---------------------------------------------------------------- the role allow-list


def test_allowed_roles_option():
    conf = FakeConf(**REQUIRED, allowed_job_role_arns=f" {ROLE} , arn:aws:iam::123456789012:role/ml-* ")
    assert load_options(conf).allowed_job_role_arns == (ROLE, "arn:aws:iam::123456789012:role/ml-*")
    assert load_options(FakeConf(**REQUIRED)).allowed_job_role_arns == ()


@pytest.mark.parametrize("value", ["airflow-etl", "arn:aws:iam::123:role/x", "arn:aws:s3:::bucket", "*"])
def test_allowed_roles_option_rejects_what_is_not_a_role(value):
    with pytest.raises(OptionError) as raised:
        load_options(FakeConf(**REQUIRED, allowed_job_role_arns=value))
    assert "allowed_job_role_arns" in str(raised.value) and repr(value) in str(raised.value)


def test_a_role_outside_the_allow_list_fails_the_build():
    factory = RequestFactory(options(), api_url="http://api/execution/", default_queue="default")
    spec = JobSpec(IDENTITY, COMMAND, "default", BatchJobOverrides(job_role_arn=ROLE))
    with pytest.raises(TaskConfigError) as raised:
        factory.build(spec)
    assert "jobRoleArn" in str(raised.value) and "allowed_job_role_arns" in str(raised.value)
    allowed = RequestFactory(
        options(allowed_job_role_arns=(ROLE,)), api_url="http://api/execution/", default_queue="default"
    )
    request = allowed.build(spec)
    assert "jobDefinitionOverrides" not in request, "the definition fields are never sent to SubmitJob"


# ---------------------------------------------------------------- placing on a derived definition


def test_definition_fields_survive_airflow_serialisation():
    from airflow.serialization.serialized_objects import BaseSerialization

    config = BatchJobOverrides(
        image="repo/x:1",
        volumes=[EfsVolume("d", "fs-1", "/d")],
        ulimits={"nofile": (1, 2)},
        log_options={"a": "b"},
    )
    assert BaseSerialization.deserialize(BaseSerialization.serialize(config)) == dict(config)
    assert (
        definition_overrides(BaseSerialization.deserialize(BaseSerialization.serialize(config)))
        == (config["jobDefinitionOverrides"]["containerProperties"])
    )


def test_the_factory_places_a_task_on_its_derived_definition():
    gateway = JobDefinitionsGateway()

    class Catalog:
        def definition(self, name):
            assert name == "jd"
            return EC2_BASE

        def placement_with(self, queue, definition):
            from airflow_batch_executor.requests.placement import definition_placement

            return definition_placement(definition, fair_share=False)

    factory = RequestFactory(
        options(),
        api_url="http://api/execution/",
        default_queue="default",
        catalog=Catalog(),
        registry=DefinitionRegistry(gateway),
    )
    spec = JobSpec(IDENTITY, COMMAND, "default", BatchJobOverrides(image="repo/etl:2", gpu=1, vcpu=2))
    placed = factory.place(factory.build(spec), spec)
    [registered] = gateway.registered
    assert placed["jobDefinition"].endswith(f"/{registered['jobDefinitionName']}:1")
    assert registered["containerProperties"]["image"] == "repo/etl:2"
    fargate_factory = RequestFactory(
        options(),
        api_url="http://api/execution/",
        default_queue="default",
        catalog=type("C", (Catalog,), {"definition": lambda self, name: FARGATE_BASE})(),
        registry=DefinitionRegistry(gateway),
    )
    with pytest.raises(TaskConfigError, match="GPUs are not supported on Fargate"):
        fargate_factory.place(fargate_factory.build(spec), spec)
    assert len(gateway.registered) == 1, "nothing is registered for a task that cannot run"


def test_a_teams_derived_definition_is_its_own():
    base = {
        "jobDefinitionName": "airflow-worker",
        "type": "container",
        "containerProperties": {"image": "base:1"},
    }
    overrides = {"image": "repo/etl:2"}
    global_, team_a, team_b = (derive(base, overrides, team) for team in (None, "team_a", "team_b"))
    assert len({global_.name, team_a.name, team_b.name}) == 3
    assert (
        team_a.register_request["tags"][DEFINITION_TEAM_TAG] == "team_a"
        and DEFINITION_TEAM_TAG not in global_.register_request["tags"]
    )
    assert derive(base, overrides).name == global_.name, "the global executor's names are unchanged"
