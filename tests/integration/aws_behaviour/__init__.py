"""The executor under what AWS does: faults and lost answers, jobs that go wrong, status events, job
definitions, placement.

Airflow's side of these (queueing, events to the scheduler, adoption, tokens, the CLI) goes through the
interface the tests one folder up prove on every supported Airflow version, so these run on the newest
one only (``constraints/matrix.txt`` leaves this folder out of the version legs).
"""
