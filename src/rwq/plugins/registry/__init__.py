"""Plugin registries: an index (``index.json``) and the bundles it names, served by any static
file server or held in a directory; publishing to one, reading one, and resolving and
installing plugins with their dependencies from them."""
