"""The plugin manager's parts, one object per concern, assembled by its façade."""
