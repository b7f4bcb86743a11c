"""The prune mid-run: every managed derived job definition is deregistered while tasks use them.

First ``prune_definitions`` runs as an operator would (``airflow aws-batch-executor prune-definitions
--older-than 0s --yes``), its output kept for the token scan. It keeps every definition a waiting or
running job uses, and while tasks keep coming that is most of them, so the soak then deregisters the
rest through the Batch API directly: the harshest prune there can be, which a submission that still
names a pruned revision must survive (Batch refuses it; the executor registers the definition anew).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.cli.commands import prune_definitions
from airflow_batch_executor.definitions.derive import MANAGED_TAG


@dataclass(frozen=True)
class PruneResult:
    at: float
    by_cli: int
    directly: int
    output: str


def prune_everything(batch: Any) -> PruneResult:
    at = time.time()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        prune_definitions(argparse.Namespace(older_than="0s", yes=True, team=None, verbose=None))
    by_cli = sum(line.startswith("deregistered") for line in output.getvalue().splitlines())
    directly = 0
    for page in batch.get_paginator("describe_job_definitions").paginate(status="ACTIVE"):
        for definition in page["jobDefinitions"]:
            if (definition.get("tags") or {}).get(MANAGED_TAG) == "true":
                batch.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])
                directly += 1
    return PruneResult(at, by_cli, directly, output.getvalue())
