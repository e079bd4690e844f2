"""The plugin contract: what a plugin may call, with the errors and argument checks of each
call. The runtimes import this and nothing else of the plugin system."""
