"""Hosting plugins for a screen or none: one builder, a local and a remote plugin host behind one
protocol, the process link between them, and the panel renderer. Never imports Textual."""
