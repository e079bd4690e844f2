"""Plugins as files: manifests, bundles (directories and zips), discovery, versions, where they
live, the user's plugin configuration."""
