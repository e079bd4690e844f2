"""The Plugin Panel System: manifests, bundles, permissions, grants, audit, bus, host API."""
