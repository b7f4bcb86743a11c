"""Derived job definitions: how a task's fields become one, the registry that reuses them, pruning."""
