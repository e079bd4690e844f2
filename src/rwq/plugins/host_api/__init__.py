"""The host functions plugins call: the service that checks and runs them, timers, per-plugin
storage, the host-call entry of each loaded instance."""
