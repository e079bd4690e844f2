"""``rwq bench``: measurements reported as JSON (figures go in docs/performance.md)."""
