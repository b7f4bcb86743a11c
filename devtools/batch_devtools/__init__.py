"""Development tools of airflow-batch-executor: never part of the executor's wheel.

``batch_devtools.local_batch`` is a local AWS Batch (moto's server, jobs run as local processes);
``batch_devtools.devstack`` runs it together with a real Airflow 3 (the demo and the end-to-end tests).
The ``batch-devtools`` console script runs either (``batch-devtools --help``).
"""
