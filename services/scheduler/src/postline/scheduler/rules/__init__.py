"""Data files of the scheduler's rules (read with importlib.resources)."""
