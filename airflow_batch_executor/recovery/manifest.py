"""An array job's manifest: which mapped instance, of which queueing, each child runs.

A scheduler can die between SubmitJob returning and the children's ids reaching Airflow's database.
For a plain job, its deterministic name finds it again. An array's name finds the array (ListJobs by
:func:`~airflow_batch_executor.requests.naming.array_name_prefix`), but not which child runs a given
mapped instance: the children share the parent's name and tags, hold no workload while they wait (it
is delivered at start), and an array need not hold every index of its range. So before SubmitJob the
executor writes this manifest into the array's delivery directory, only where none is (a retry after
a lost answer cannot change what a job of the first attempt may already run). It holds no token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from airflow_batch_executor.requests.naming import WorkloadIdentity

MANIFEST_NAME = "manifest.json"


def manifest_key(directory: str) -> str:
    """Where the manifest of the array whose delivery directory is ``directory`` is kept: a key for a
    directory's key, a URI for its ``s3://`` URI (both end in ``/``)."""
    return f"{directory}{MANIFEST_NAME}"


@dataclass(frozen=True)
class ArrayChild:
    """Child ``index`` of an array (its position here) runs this mapped instance of this queueing."""

    map_index: int
    submission: str
    """The queueing's id (``airflow.submission``): a try requeued after a revoke keeps its map index."""


@dataclass(frozen=True)
class ArrayManifest:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    children: tuple[ArrayChild, ...]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "dag_id": self.dag_id,
                "task_id": self.task_id,
                "run_id": self.run_id,
                "try_number": self.try_number,
                "children": [[child.map_index, child.submission] for child in self.children],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, body: bytes) -> ArrayManifest:
        """ValueError for anything but a manifest :meth:`to_json` wrote."""
        try:
            data = json.loads(body)
            children = tuple(ArrayChild(int(index), str(queueing)) for index, queueing in data["children"])
            try_number = int(data["try_number"])
            return cls(str(data["dag_id"]), str(data["task_id"]), str(data["run_id"]), try_number, children)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an array manifest: {error}") from error

    def child_index(self, identity: WorkloadIdentity, submission: str | None) -> int | None:
        """The index of the child that runs this mapped try (of this queueing, when given); None when
        this array holds none."""
        if (self.dag_id, self.task_id, self.run_id, self.try_number) != identity.task_try:
            return None
        for index, child in enumerate(self.children):
            if child.map_index == identity.map_index and submission in (None, child.submission):
                return index
        return None
