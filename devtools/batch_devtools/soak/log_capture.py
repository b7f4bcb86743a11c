"""Everything the executor logs during a soak, at DEBUG, kept in memory for the token scan.

The executor logs through the standard library (``logging.getLogger(__name__)``) and, for the
executor class itself, through Airflow's structlog loggers, which Airflow configures to print to
stdout. Both are routed to the ``airflow_batch_executor`` loggers here and kept in a buffer (not
printed); the rest of the process (moto's server, the local Batch, Airflow) only prints warnings.
"""

from __future__ import annotations

import logging
import sys

import structlog

EXECUTOR_LOGGER = "airflow_batch_executor"
QUIET = ("werkzeug", "batch_devtools", "botocore", "urllib3", "airflow", "moto")


class LineBuffer(logging.Handler):
    """Keeps every formatted record; counts warnings and errors."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.by_level: dict[str, int] = {}
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is kept as raw text
            self.lines.append(f"{record.levelname} {record.name}: {record.msg!r} {record.args!r}")
        self.by_level[record.levelname] = self.by_level.get(record.levelname, 0) + 1

    def text(self) -> str:
        return "\n".join(self.lines)


def capture_executor_logs() -> LineBuffer:
    """Route the executor's logs (stdlib and structlog) into a buffer at DEBUG; quiet the rest."""
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            _event_only,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    root.setLevel(logging.WARNING)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    buffer = LineBuffer()
    executor = logging.getLogger(EXECUTOR_LOGGER)
    executor.setLevel(logging.DEBUG)
    executor.propagate = False
    executor.addHandler(buffer)
    return buffer


def _event_only(logger: object, method: str, event_dict: dict) -> tuple[tuple[str], dict]:
    """Hand stdlib the message alone (with any other fields appended), so it formats it as text."""
    event = str(event_dict.pop("event", ""))
    event_dict.pop("level", None)
    extra = " ".join(f"{key}={value}" for key, value in event_dict.items())
    return (f"{event} {extra}" if extra else event,), {}
