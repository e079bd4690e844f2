"""The terminal UI: Textual screens and widgets on top of the queue and the plugin host."""
