"""The ``rwq`` command line: the root commands (:mod:`rwq.cli.app`), the ``rwq plugin``
commands (:mod:`rwq.cli.plugin`) and the tables they print (:mod:`rwq.cli.table`)."""
