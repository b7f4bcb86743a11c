"""Pure decisions, tested as tables: what a DAG author may ask for and what a job's status means.

Nothing here does I/O or imports a module that does.
"""
