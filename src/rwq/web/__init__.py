"""``rwq web``: the HTTP admin API (and, built on it, the browser dashboard), an ASGI app on
FastAPI served by uvicorn. It stands on the queue, the plugin system and the plugin host;
never on Textual or the command line."""
