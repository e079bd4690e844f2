"""The ``rwq`` command line: the root commands (:mod:`rwq.cli.app`), ``rwq admin``
(:mod:`rwq.cli.admin`), ``rwq plugin`` (:mod:`rwq.cli.plugin`), what they share
(:mod:`rwq.cli.context`) and the tables they print (:mod:`rwq.cli.table`)."""
