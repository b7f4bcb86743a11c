"""How a job is found again: adoption after a scheduler restart, look-ups by name, and the orphan sweep."""
