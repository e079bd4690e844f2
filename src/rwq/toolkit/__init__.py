"""The plugin author's toolkit: a new plugin from a template (``scaffold``), building it
(``build``) and comparing its panel with a stored snapshot (``snapshot``)."""
