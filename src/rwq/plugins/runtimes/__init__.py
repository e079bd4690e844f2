"""Plugin runtimes: the sandboxes plugins run in (WASM, Starlark), behind one protocol."""
