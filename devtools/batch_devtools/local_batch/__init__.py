"""A local AWS Batch: moto's server on 127.0.0.1 whose jobs really run, as local processes.

Use ``LocalBatch`` in-process (tests) or ``python -m batch_devtools.local_batch`` as a
standalone server; ``LocalBatchControl`` drives faults of a server in another process.
"""

from batch_devtools.local_batch.control import LocalBatchControl
from batch_devtools.local_batch.faults import (
    CAPACITY_REASON,
    HOST_TERMINATED_REASON,
    MISCONFIGURATION_REASON,
    Faults,
)
from batch_devtools.local_batch.server import LocalBatch

__all__ = [
    "CAPACITY_REASON",
    "HOST_TERMINATED_REASON",
    "MISCONFIGURATION_REASON",
    "Faults",
    "LocalBatch",
    "LocalBatchControl",
]
