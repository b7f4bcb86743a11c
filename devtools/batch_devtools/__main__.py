"""``batch-devtools``: the development tools of airflow-batch-executor, outside Airflow's CLI.

``local-batch`` runs the local AWS Batch; ``devstack`` runs it together with a real Airflow 3
(``devstack demo`` is what ``scripts/demo`` runs).
"""

from __future__ import annotations

import sys

USAGE = """usage: batch-devtools {local-batch,devstack} [options]

  local-batch   a local AWS Batch on 127.0.0.1 whose jobs run as local processes (see --help)
  devstack      the local Batch plus a real Airflow 3: 'devstack demo' or 'devstack up' (see --help)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "local-batch":
        from batch_devtools.local_batch.__main__ import main as local_batch

        return local_batch(rest)
    if command == "devstack":
        from batch_devtools.devstack.__main__ import main as devstack

        return devstack(rest)
    print(f"batch-devtools: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
