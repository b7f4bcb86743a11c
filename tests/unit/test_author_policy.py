"""What a DAG author may ask for: a table of requests in both spellings, each allowed or refused with
the field and the option named; job definitions a task names and their roles; the options; retries."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from airflow_batch_executor import BatchJobOverrides, EfsVolume, HostVolume
from airflow_batch_executor.definitions.derive import SUBMIT_OVERRIDABLE, _container_properties_shape
from airflow_batch_executor.definitions.registry import DefinitionRegistry
from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.options import load_options
from airflow_batch_executor.requests.factory import RequestFactory, base_request
from airflow_batch_executor.requests.placement import definition_placement
from airflow_batch_executor.requests.task_specs import JobSpec
from airflow_batch_executor.rules.author_policy import (
    ALLOWED_FIELDS,
    GATED_FIELDS,
    LINUX_PARAMETERS_ALLOWED,
    LINUX_PARAMETERS_GATED,
    LOG_CONFIGURATION_ALLOWED,
    LOG_CONFIGURATION_REFUSED,
    REFUSED_FIELDS,
    VOLUME_ALLOWED,
    VOLUME_REFUSED,
    definition_name,
    definition_refusals,
    host_path_allowed,
    names_root,
    normal_path,
)

from .helpers import (
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

PROPS = "jobDefinitionOverrides.containerProperties"
ADMIN = "arn:aws:iam::123456789012:role/admin"
DEFAULT_ROLE = FARGATE_BASE["containerProperties"]["executionRoleArn"]


def raw(**fields: Any) -> dict:
    return {"jobDefinitionOverrides": {"containerProperties": fields}}


def mutated(config: BatchJobOverrides, **fields: Any) -> BatchJobOverrides:
    """A BatchJobOverrides a DAG author changed after building it: it is a dict, so nothing stops them."""
    config.setdefault("jobDefinitionOverrides", {"containerProperties": {}})
    config["jobDefinitionOverrides"]["containerProperties"].update(fields)
    return config


def host(path: str, name: str = "h") -> dict:
    return {
        "volumes": [{"name": name, "host": {"sourcePath": path}}],
        "mountPoints": [{"sourceVolume": name, "containerPath": "/mnt/h"}],
    }


def device(path: str) -> dict:
    return {"linuxParameters": {"devices": [{"hostPath": path, "containerPath": "/dev/x"}]}}


def build(config: Any, **option_overrides: Any) -> dict:
    factory = RequestFactory(
        options(**option_overrides), api_url="http://api/execution/", default_queue="default"
    )
    return factory.build(JobSpec(IDENTITY, COMMAND, "default", config))


def refusal(config: Any, **option_overrides: Any) -> str:
    with pytest.raises(TaskConfigError) as raised:
        build(config, **option_overrides)
    return str(raised.value)


# ---------------------------------------------------------------- the table
# (name, executor_config, options, None when allowed or [(field, option), ...] when refused)

DOCKER_SOCKET = "/var/run/docker.sock"
CASES: list[tuple[str, Any, dict, list[tuple[str, str]] | None]] = [
    # privileged
    ("privileged", raw(privileged=True), {}, [(f"{PROPS}.privileged", "allow_privileged_containers")]),
    ("privileged, typed and mutated", mutated(BatchJobOverrides(vcpu=1), privileged=True), {},
     [(f"{PROPS}.privileged", "allow_privileged_containers")]),
    ("privileged allowed", raw(privileged=True), {"allow_privileged_containers": True}, None),
    ("privileged false", raw(privileged=False), {}, None),
    # host paths
    ("host /", raw(**host("/")), {}, [(f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths")]),
    ("host docker socket, typed",
     BatchJobOverrides(volumes=[HostVolume("d", "/d", source_path=DOCKER_SOCKET)]), {},
     [(f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths")]),
    ("host path outside the listed one", raw(**host(DOCKER_SOCKET)), {"allowed_host_paths": ("/data",)},
     [(f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths")]),
    ("host path beside the listed one", raw(**host("/data2")), {"allowed_host_paths": ("/data",)},
     [(f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths")]),
    ("host path climbing out", raw(**host("/data/../etc")), {"allowed_host_paths": ("/data",)},
     [(f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths")]),
    ("relative host path", raw(**host("data")), {"allowed_host_paths": ("/",)},
     [(f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths")]),
    ("listed host path", raw(**host("/data")), {"allowed_host_paths": ("/data",)}, None),
    ("beneath a listed host path, typed",
     BatchJobOverrides(volumes=[HostVolume("h", "/h", source_path="/data/./x//y/")]),
     {"allowed_host_paths": ("/data",)}, None),
    ("every path with / listed", raw(**host(DOCKER_SOCKET)), {"allowed_host_paths": ("/",)}, None),
    ("scratch and EFS volumes, typed",
     BatchJobOverrides(volumes=[HostVolume("tmp", "/scratch"), EfsVolume("e", "fs-1", "/e")]), {}, None),
    ("an S3 Files volume", raw(volumes=[{"name": "s", "s3filesVolumeConfiguration": {"fileSystemArn": "a"}}]),
     {}, [(f"{PROPS}.volumes[0].s3filesVolumeConfiguration", "allowed_job_definitions")]),
    # devices
    ("device /dev/mem", raw(**device("/dev/mem")), {},
     [(f"{PROPS}.linuxParameters.devices[0].hostPath", "allowed_devices")]),
    ("device /dev/mem, typed and mutated",
     mutated(BatchJobOverrides(shared_memory_mib=64), **device("/dev/mem")), {},
     [(f"{PROPS}.linuxParameters.devices[0].hostPath", "allowed_devices")]),
    ("unlisted device", raw(**device("/dev/sda")), {"allowed_devices": ("/dev/fuse",)},
     [(f"{PROPS}.linuxParameters.devices[0].hostPath", "allowed_devices")]),
    ("listed device", raw(**device("/dev//fuse")), {"allowed_devices": ("/dev/fuse",)}, None),
    ("listed device climbing out", raw(**device("/dev/fuse/../mem")), {"allowed_devices": ("/dev/fuse",)},
     [(f"{PROPS}.linuxParameters.devices[0].hostPath", "allowed_devices")]),
    ("memory and tmpfs inside the container",
     raw(linuxParameters={"sharedMemorySize": 64, "tmpfs": [{"containerPath": "/t", "size": 8}],
                          "initProcessEnabled": True, "maxSwap": 0, "swappiness": 0}), {}, None),
    # user
    *[(f"user {user!r}", raw(user=user), {}, [(f"{PROPS}.user", "allow_root_user")])
      for user in ("root", "0", "0:0", "0:1000", "root:wheel", " 0 ", "00", "+0", " root : x")],
    ("user root, typed and mutated", mutated(BatchJobOverrides(image="repo/x:1"), user="root"), {},
     [(f"{PROPS}.user", "allow_root_user")]),
    *[(f"user {user!r}", raw(user=user), {}, None) for user in ("1000", "airflow", "1000:0", "rooty", "10")],
    ("user root allowed", raw(user="root"), {"allow_root_user": True}, None),
    # refused always
    ("secrets", raw(secrets=[{"name": "DB", "valueFrom": "arn:aws:secretsmanager:x"}]), {},
     [(f"{PROPS}.secrets", "allowed_job_definitions")]),
    ("log secret options",
     raw(logConfiguration={"logDriver": "splunk", "secretOptions": [{"name": "t", "valueFrom": "arn"}]}), {},
     [(f"{PROPS}.logConfiguration.secretOptions", "allowed_job_definitions")]),
    ("log options",
     BatchJobOverrides(log_driver="awslogs", log_options={"awslogs-stream-prefix": "x"}), {}, None),
    ("public IP", raw(networkConfiguration={"assignPublicIp": "ENABLED"}), {},
     [(f"{PROPS}.networkConfiguration", "allowed_job_definitions")]),
    ("registry credentials", raw(repositoryCredentials={"credentialsParameter": "arn:secret"}), {},
     [(f"{PROPS}.repositoryCredentials", "allowed_job_definitions")]),
    ("execute command", raw(enableExecuteCommand=True), {},
     [(f"{PROPS}.enableExecuteCommand", "allowed_job_definitions")]),
    # roles
    ("a role outside the allow-list, typed", BatchJobOverrides(job_role_arn=ADMIN),
     {"allowed_job_role_arns": ("arn:aws:iam::123456789012:role/airflow-*",)},
     [(f"{PROPS}.jobRoleArn", "allowed_job_role_arns")]),
    ("an allowed role",
     raw(jobRoleArn=ROLE, executionRoleArn=ROLE), {"allowed_job_role_arns": (ROLE,)}, None),
    # what stays inside the container
    ("image, storage, platform",
     raw(image="repo/x:1", readonlyRootFilesystem=True, ephemeralStorage={"sizeInGiB": 30},
         fargatePlatformConfiguration={"platformVersion": "1.4.0"},
         runtimePlatform={"cpuArchitecture": "ARM64"},
         ulimits=[{"name": "nofile", "softLimit": 1, "hardLimit": 2}]), {}, None),
    # all at once, in both spellings
    ("everything at once",
     raw(privileged=True, user="0", **host("/"), **device("/dev/mem"),
         secrets=[{"name": "S", "valueFrom": "arn"}]), {},
     [(f"{PROPS}.privileged", "allow_privileged_containers"), (f"{PROPS}.user", "allow_root_user"),
      (f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths"),
      (f"{PROPS}.linuxParameters.devices[0].hostPath", "allowed_devices"),
      (f"{PROPS}.secrets", "allowed_job_definitions")]),
    ("everything at once, typed and mutated",
     mutated(BatchJobOverrides(volumes=[HostVolume("h", "/mnt/h", source_path="/")]), privileged=True,
             user="root", **device("/dev/kmsg")), {},
     [(f"{PROPS}.privileged", "allow_privileged_containers"), (f"{PROPS}.user", "allow_root_user"),
      (f"{PROPS}.volumes[0].host.sourcePath", "allowed_host_paths"),
      (f"{PROPS}.linuxParameters.devices[0].hostPath", "allowed_devices")]),
    ("everything at once, all allowed",
     raw(privileged=True, user="0", **host("/"), **device("/dev/mem")),
     {"allow_privileged_containers": True, "allow_root_user": True, "allowed_host_paths": ("/",),
      "allowed_devices": ("/dev/mem",)}, None),
]  # fmt: skip


@pytest.mark.parametrize(
    "config, option_values, refused", [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_what_a_dag_author_may_ask_of_a_job_definition(config, option_values, refused):
    if refused is None:
        request = build(config, **option_values)
        assert "jobDefinitionOverrides" not in request
        return
    message = refusal(config, **option_values)
    assert message.startswith("executor_config asks for what a DAG author may not have: ")
    assert "Fix:" in message
    for field, option in refused:
        assert f"{field} " in message, (field, message)
        assert f"[aws_batch_executor] {option}" in message, (option, message)


def test_each_refusal_says_what_to_do():
    message = refusal(raw(privileged=True, **host("/var/run/docker.sock"), user="root"))
    problems, fixes = message.split(". Fix: ")
    assert "(1) jobDefinitionOverrides.containerProperties.privileged is true" in problems
    assert "(1) drop privileged, or set [aws_batch_executor] allow_privileged_containers = True" in fixes
    assert "(2) jobDefinitionOverrides.containerProperties.user 'root' runs the container as root" in problems
    assert '(2) run as another user (e.g. "1000")' in fixes
    assert (
        "(3) jobDefinitionOverrides.containerProperties.volumes[0].host.sourcePath '/var/run/docker.sock' is "
        "a host path outside those [aws_batch_executor] allowed_host_paths lists (none)"
    ) in problems
    assert "(3) use an EFS or scratch volume" in fixes
    secrets = refusal(raw(secrets=[{"name": "S", "valueFrom": "arn"}]))
    assert "fetched with the execution role" in secrets
    assert (
        "set it on a job definition, list that definition in [aws_batch_executor] allowed_job_definitions"
        in (secrets)
    )


@pytest.mark.parametrize(
    "base, overrides, option_values, refused_by",
    [
        # the policy refuses on both platforms, before the platform is even known
        (EC2_BASE, raw(privileged=True), {}, "allow_privileged_containers"),
        (FARGATE_BASE, raw(privileged=True), {}, "allow_privileged_containers"),
        (EC2_BASE, raw(**host("/data")), {}, "allowed_host_paths"),
        (FARGATE_BASE, raw(**host("/data")), {}, "allowed_host_paths"),
        # allowed by the operator: EC2 runs it, Fargate still cannot
        (EC2_BASE, raw(privileged=True), {"allow_privileged_containers": True}, None),
        (FARGATE_BASE, raw(privileged=True), {"allow_privileged_containers": True}, "not allowed on Fargate"),
        (EC2_BASE, raw(**host("/data")), {"allowed_host_paths": ("/data",)}, None),
        (FARGATE_BASE, raw(**host("/data")), {"allowed_host_paths": ("/data",)}, "Fargate does not allow"),
        (EC2_BASE, raw(**device("/dev/fuse")), {"allowed_devices": ("/dev/fuse",)}, None),
        (FARGATE_BASE, raw(**device("/dev/fuse")), {"allowed_devices": ("/dev/fuse",)},
         "not applicable on Fargate"),
    ],
)  # fmt: skip
def test_ec2_and_fargate_definitions(base, overrides, option_values, refused_by):
    gateway = JobDefinitionsGateway()
    factory, spec = placing(base, overrides, gateway, **option_values)
    if refused_by is None:
        placed = factory.place(factory.build(spec), spec)
        [registered] = gateway.registered
        assert placed["jobDefinition"].endswith(f"/{registered['jobDefinitionName']}:1")
        return
    with pytest.raises(TaskConfigError, match=refused_by):
        factory.place(factory.build(spec), spec)
    assert gateway.registered == []


class Catalog:
    """Job definitions by name, as the placement catalog serves them (DescribeJobDefinitions)."""

    def __init__(self, definitions: dict[str, dict]) -> None:
        self.definitions = definitions
        self.asked: list[str] = []

    def definition(self, reference: str) -> dict:
        self.asked.append(reference)
        return self.definitions[definition_name(reference)]

    def placement(self, queue: str, reference: str):
        return definition_placement(self.definition(reference), fair_share=False)

    def placement_with(self, queue: str, definition: dict):
        return definition_placement(definition, fair_share=False)


def named(name: str, base: dict = FARGATE_BASE, **properties: Any) -> dict:
    definition = copy.deepcopy(base)
    definition["jobDefinitionName"] = name
    definition["jobDefinitionArn"] = f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}:1"
    definition["containerProperties"].update(properties)
    return definition


DEFINITIONS = {
    "jd": named("jd"),
    "jd-kwargs": named("jd-kwargs"),
    "gpu-worker": named("gpu-worker", EC2_BASE, jobRoleArn=ROLE),
    "gpu-admin": named("gpu-admin", EC2_BASE, jobRoleArn=ADMIN),
    "gpu-default-role": named("gpu-default-role", executionRoleArn=DEFAULT_ROLE),
    "gpu-exec-admin": named("gpu-exec-admin", executionRoleArn=ADMIN),
    "other": named("other"),
}


def placing(base: dict, config: Any, gateway: JobDefinitionsGateway, **option_values: Any):
    factory = RequestFactory(
        options(**option_values),
        api_url="http://api/execution/",
        default_queue="default",
        catalog=Catalog({**DEFINITIONS, "jd": named("jd", base)}),
        registry=DefinitionRegistry(gateway),
    )
    return factory, JobSpec(IDENTITY, COMMAND, "default", config)


ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/{}:2"


@pytest.mark.parametrize(
    "config, option_values, refused",
    [
        ({"jobDefinition": "other"}, {}, "allowed_job_definitions does not list (none)"),
        (BatchJobOverrides(job_definition="other"), {}, "allowed_job_definitions does not list (none)"),
        ({"jobDefinition": "gpu"}, {"allowed_job_definitions": ("gpu-*",)}, "does not list (gpu-*)"),
        ({"jobDefinition": "other"}, {"allowed_job_definitions": ("gpu-*", "jd-*")}, "does not list"),
        (
            {"jobDefinition": ARN.format("other")},
            {"allowed_job_definitions": ("gpu-worker",)},
            "does not list",
        ),
        ({"jobDefinition": "jd"}, {}, None),
        ({"jobDefinition": "jd:3"}, {}, None),
        ({"jobDefinition": ARN.format("jd")}, {}, None),
        ({"jobDefinition": "jd-kwargs"}, {"submit_job_kwargs": {"jobDefinition": "jd-kwargs"}}, None),
        ({"jobDefinition": "gpu-worker"}, {"allowed_job_definitions": ("gpu-worker",)}, None),
        (BatchJobOverrides(job_definition="gpu-worker:4"), {"allowed_job_definitions": ("gpu-*",)}, None),
        ({"jobDefinition": ARN.format("gpu-worker")}, {"allowed_job_definitions": ("gpu-*",)}, None),
        ({"jobDefinition": "anything"}, {"allowed_job_definitions": ("*",)}, None),
    ],
)
def test_job_definitions_a_task_may_name(config, option_values, refused):
    if refused is None:
        assert build(config, **option_values)["jobDefinition"] == config["jobDefinition"]
        return
    message = refusal(config, **option_values)
    assert f"jobDefinition {config['jobDefinition']!r} names a job definition" in message
    assert refused in message
    assert "[aws_batch_executor] allowed_job_definitions" in message


@pytest.mark.parametrize(
    "definition, config_extra, option_values, refused",
    [
        ("gpu-worker", {}, {"allowed_job_role_arns": (ROLE,)}, None),
        ("gpu-worker", {}, {"allowed_job_role_arns": ("arn:aws:iam::123456789012:role/airflow-*",)}, None),
        ("gpu-default-role", {}, {}, None),
        ("jd:3", {}, {}, None),
        ("gpu-worker", {}, {}, "jobRoleArn 'arn:aws:iam::123456789012:role/airflow-etl'"),
        ("gpu-admin", {}, {"allowed_job_role_arns": (ROLE,)},
         "jobRoleArn 'arn:aws:iam::123456789012:role/admin'"),
        ("gpu-exec-admin", {}, {}, "executionRoleArn 'arn:aws:iam::123456789012:role/admin'"),
        ("gpu-admin", raw(image="repo/x:1"), {"allowed_job_role_arns": (ROLE,)},
         "the base of the task's derived"),
        ("gpu-worker", raw(image="repo/x:1"), {"allowed_job_role_arns": (ROLE,)}, None),
    ],
)  # fmt: skip
def test_the_roles_of_a_definition_a_task_names_must_be_allowed(
    definition, config_extra, option_values, refused
):
    gateway = JobDefinitionsGateway()
    config = {**config_extra, "jobDefinition": definition}
    factory, spec = placing(
        FARGATE_BASE, config, gateway, allowed_job_definitions=("gpu-*",), **option_values
    )
    request = factory.build(spec)
    if refused is None:
        placed = factory.place(request, spec)
        assert placed["jobDefinition"].startswith(("arn:", definition))
        return
    with pytest.raises(TaskConfigError) as raised:
        factory.place(request, spec)
    message = str(raised.value)
    assert refused in message and "[aws_batch_executor] allowed_job_role_arns" in message
    assert "Fix:" in message and "iam:PassRole" in message
    assert gateway.registered == [], "nothing is registered for a refused task"


def test_the_operators_own_definition_needs_no_role_check():
    catalog = Catalog({"jd": named("jd", jobRoleArn=ADMIN)})
    factory = RequestFactory(options(), api_url="http://a/", default_queue="default", catalog=catalog)
    spec = JobSpec(IDENTITY, COMMAND, "default", None)
    factory.place(factory.build(spec), spec)
    assert catalog.asked == ["jd"], "only the placement lookup"


def test_a_task_cannot_mount_a_host_volume_of_its_base_definition_it_could_not_ask_for():
    base = named("jd", EC2_BASE, volumes=[{"name": "sock", "host": {"sourcePath": DOCKER_SOCKET}}])
    gateway = JobDefinitionsGateway()
    factory = RequestFactory(
        options(),
        api_url="http://a/",
        default_queue="default",
        catalog=Catalog({"jd": base}),
        registry=DefinitionRegistry(gateway),
    )
    spec = JobSpec(
        IDENTITY, COMMAND, "default", raw(mountPoints=[{"sourceVolume": "sock", "containerPath": "/s"}])
    )
    request = factory.build(spec)
    with pytest.raises(TaskConfigError) as raised:
        factory.place(request, spec)
    assert "mountPoints (volume 'sock' of the base definition)" in str(raised.value)
    assert "[aws_batch_executor] allowed_host_paths" in str(raised.value)
    assert gateway.registered == []


# ---------------------------------------------------------------- every field is classified


def test_every_container_properties_field_of_botocore_is_classified_on_purpose():
    shape = _container_properties_shape()
    classes = [ALLOWED_FIELDS, set(GATED_FIELDS), set(REFUSED_FIELDS), SUBMIT_OVERRIDABLE]
    assert set().union(*classes) == set(shape.members), "classify the new field in author_policy"
    assert sum(len(c) for c in classes) == len(shape.members), "each field is in one class only"
    assert set(shape.members["linuxParameters"].members) == LINUX_PARAMETERS_ALLOWED | set(
        LINUX_PARAMETERS_GATED
    )
    assert set(shape.members["logConfiguration"].members) == LOG_CONFIGURATION_ALLOWED | set(
        LOG_CONFIGURATION_REFUSED
    )
    assert set(shape.members["volumes"].member.members) == VOLUME_ALLOWED | set(VOLUME_REFUSED)
    assert set(shape.members["volumes"].member.members["host"].members) == {"sourcePath"}


def test_a_field_the_policy_does_not_know_is_refused():
    [refused] = definition_refusals({"someFutureField": True}, options())
    assert refused.field == f"{PROPS}.someFutureField" and refused.option == "allowed_job_definitions"
    [nested] = definition_refusals({"linuxParameters": {"capabilities": {"add": ["SYS_ADMIN"]}}}, options())
    assert nested.field == f"{PROPS}.linuxParameters.capabilities"


@pytest.mark.parametrize("key", ["ecsProperties", "eksProperties", "nodeProperties"])
def test_job_definition_overrides_hold_container_properties_only(key):
    message = refusal({"jobDefinitionOverrides": {key: {}}})
    assert "must be a dict with the one key containerProperties" in message


# ---------------------------------------------------------------- paths and users


@pytest.mark.parametrize(
    "path, normal",
    [
        ("/", "/"),
        ("//", "/"),
        ("/data/", "/data"),
        ("/data/./x//y", "/data/x/y"),
        ("//data", "/data"),
        ("data", None),
        ("./data", None),
        ("", None),
        (" /data", None),
        ("/data/../etc", None),
        ("/..", None),
        (None, None),
    ],
)
def test_normal_paths(path, normal):
    assert normal_path(path) == normal


def test_root_is_recognised_in_every_spelling_docker_takes():
    assert all(names_root(user) for user in ("root", "0", "000", "+0", "-0", "0:0", "root:root", "\t0\n"))
    assert not any(names_root(user) for user in ("1000", "10", "Root", "root2", "", ":0", "1000:0"))


# Few, short names, one a prefix of another ("d", "d2"), so siblings and ".." tricks come up often.
name = st.sampled_from(["d", "d2", "x", "x y"])
segment = st.one_of(name, st.sampled_from(["", ".", ".."]))
paths = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["/", "/", "//", "", "./"]),
    st.lists(segment, max_size=4),
)
roots = st.lists(st.lists(name, max_size=3).map(lambda parts: "/" + "/".join(parts)), max_size=3)


def resolved(path: str) -> str:
    """What the host would mount, lexically: ``..`` resolved, duplicate slashes gone."""
    return posixpath.normpath("/" + path.lstrip("/"))


@given(paths, roots)
@example("/d2", ["/d"])
@example("/d/../x", ["/d"])
def test_an_allowed_host_path_never_resolves_outside_the_listed_ones(path, allowed):
    if host_path_allowed(path, allowed):
        assert path.startswith("/") and ".." not in path.split("/")
        target = resolved(path)
        assert any(posixpath.commonpath([root, target]) == root for root in allowed), (path, allowed)


@given(paths, roots)
@example("/d2", ["/d"])
def test_a_clean_path_beneath_a_listed_one_is_allowed(path, allowed):
    clean = path.startswith("/") and ".." not in path.split("/")
    beneath = clean and any(posixpath.commonpath([root, resolved(path)]) == root for root in allowed)
    assert host_path_allowed(path, allowed) == beneath


# ---------------------------------------------------------------- options


def test_the_policy_options_default_to_allowing_nothing():
    opts = load_options(FakeConf(**REQUIRED))
    assert opts.allow_privileged_containers is False and opts.allow_root_user is False
    assert opts.allowed_host_paths == opts.allowed_devices == opts.allowed_job_definitions == ()


def test_the_policy_options_are_parsed_and_normalised():
    opts = load_options(
        FakeConf(
            **REQUIRED,
            allow_privileged_containers="true",
            allow_root_user="yes",
            allowed_host_paths=" /data/ , //mnt//models,/data",
            allowed_devices="/dev/fuse,/dev//nvidia0",
            allowed_job_definitions="airflow-gpu, ml-* ,*",
        )
    )
    assert opts.allow_privileged_containers is True and opts.allow_root_user is True
    assert opts.allowed_host_paths == ("/data", "/mnt/models")
    assert opts.allowed_devices == ("/dev/fuse", "/dev/nvidia0")
    assert opts.allowed_job_definitions == ("airflow-gpu", "ml-*", "*")


@pytest.mark.parametrize(
    "option, value, text",
    [
        ("allow_privileged_containers", "sometimes", "not a boolean"),
        ("allow_root_user", "2", "not a boolean"),
        ("allowed_host_paths", "/data,relative/path", "'relative/path', which is not an absolute path"),
        ("allowed_host_paths", "/data/../etc", "'/data/../etc', which is not an absolute path without '..'"),
        ("allowed_devices", "dev/fuse", "'dev/fuse', which is not an absolute path"),
        ("allowed_job_definitions", "jd:3", "neither a job definition name nor a name prefix"),
        ("allowed_job_definitions", ARN.format("jd"), "neither a job definition name"),
        ("allowed_job_definitions", "gpu*-x", "neither a job definition name"),
    ],
)
def test_bad_policy_options_stop_start_up_with_the_fix(option, value, text):
    with pytest.raises(OptionError) as raised:
        load_options(FakeConf(**REQUIRED, **{option: value}))
    assert raised.value.option == option
    assert text in str(raised.value) and "Fix:" in str(raised.value)


# ---------------------------------------------------------------- Batch-level retries


def test_every_job_is_submitted_with_one_attempt():
    assert build(None)["retryStrategy"] == {"attempts": 1}
    on_exit = {"evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}]}
    assert build({"retryStrategy": {"attempts": 1, **on_exit}})["retryStrategy"] == {"attempts": 1, **on_exit}
    assert build({"retryStrategy": on_exit})["retryStrategy"] == {"attempts": 1, **on_exit}


@pytest.mark.parametrize(
    "config, field",
    [
        ({"retryStrategy": {"attempts": 3}}, "retryStrategy.attempts is 3"),
        ({"retryStrategy": {"attempts": 2, "evaluateOnExit": []}}, "retryStrategy.attempts is 2"),
        ({"arrayProperties": {"size": 2}}, "arrayProperties makes an array job"),
    ],
)
def test_a_task_cannot_make_batch_run_its_try_twice(config, field):
    message = refusal(config)
    assert f"executor_config {field}" in message
    assert "Fix:" in message and ("Airflow's retries" in message or "expand" in message)


@pytest.mark.parametrize("kwargs", [{"retryStrategy": {"attempts": 3}}, {"arrayProperties": {"size": 10}}])
def test_submit_job_kwargs_cannot_make_batch_run_a_try_twice(kwargs):
    with pytest.raises(OptionError) as raised:
        base_request(options(submit_job_kwargs=kwargs))
    assert raised.value.option == "submit_job_kwargs"
    assert "asks Batch to run a job more than once" in str(raised.value)


# ---------------------------------------------------------------- the environment


@pytest.mark.parametrize(
    "name", ["ECS_CONTAINER_METADATA_URI_V4", "AIRFLOW_BATCH_EXECUTOR_DELIVERY_WAIT_SECONDS"]
)
@pytest.mark.parametrize("spelling", ["raw", "overrides"])
def test_a_task_cannot_set_what_its_bootstrap_trusts_to_find_its_workload(name, spelling):
    config = (
        {"containerOverrides": {"environment": [{"name": "OK", "value": "1"}, {"name": name, "value": "x"}]}}
        if spelling == "raw"
        else BatchJobOverrides(environment={"OK": "1", name: "x"})
    )
    message = refusal(config)
    assert f"executor_config containerOverrides.environment {name}" in message
    assert f"Fix: remove {name} from the task's environment" in message


def test_a_task_sets_its_own_variables():
    config = {"containerOverrides": {"environment": [{"name": "ECS_OTHER", "value": "1"}]}}
    environment = build(config)["containerOverrides"]["environment"]
    assert {"name": "ECS_OTHER", "value": "1"} in environment
