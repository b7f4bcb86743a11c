"""The one merge rule of the executor: a recursive dict update where lists replace, never append.

SubmitJob requests and derived job definitions are both built with it, so a task that states a list
(``resourceRequirements``, ``volumes``) states the whole list, without inheriting stray entries.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict update that never mutates its inputs; non-dict values (lists too) replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
