"""Plugin panels drawn into lines of styled text off the screen's thread: the UI elements as Rich
renderables, and the renderer that turns a plugin's ``render`` into frames."""
