"""What the CLI prints: only what each command means to say, on stdout.

Airflow's CLI configures logging at start-up at its ``[logging] logging_level``, writing to stdout
both through a root ``logging`` handler (botocore's "Found credentials in environment variables")
and through structlog loggers (the AWS hook's "No connection ID provided"); their lines would
otherwise be printed among a command's results.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

import structlog


def quiet_library_logging(args: argparse.Namespace) -> None:
    """Send log messages to stderr, and only warnings and errors unless ``--verbose``."""
    verbose = getattr(args, "verbose", None)
    if verbose is None:  # not parsed by the CLI (a test calling the command): leave logging alone
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
        if not verbose:
            handler.setLevel(max(handler.level, logging.WARNING))

    config = structlog.get_config()
    make_logger = config["logger_factory"]

    def make_stderr_logger(*factory_args: Any) -> Any:
        # structlog's loggers write to the sys.stdout they see when created
        with contextlib.redirect_stdout(sys.stderr):
            return make_logger(*factory_args)

    def drop_below_warning(logger: Any, method_name: str, event_dict: Any) -> Any:
        if method_name in ("debug", "info", "msg"):
            raise structlog.DropEvent
        return event_dict

    processors = config["processors"] if verbose else [drop_below_warning, *config["processors"]]
    structlog.configure(logger_factory=make_stderr_logger, processors=processors)
