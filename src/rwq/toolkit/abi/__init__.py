"""``rwq plugin check --abi``: a conformance run of WASM plugin ABI v1 (``docs/abi.md``), so the
author of a module in any language can prove it right.

:func:`run_conformance` reads the module's imports and exports against the ABI's rules, has the
host load it as ``rwq plugin check`` does (nothing granted), then runs named cases on fresh
instances of it under the manifest's limits with the real host API (:mod:`.harness`): each hook
with the arguments the host hands over (:mod:`.hooks`, :mod:`.arguments`), and the edges
(:mod:`.edges`). Each case passes, fails or is skipped, with a reason (:mod:`.report`).
"""

from rwq.toolkit.abi.report import AbiInputError, AbiReport, CaseResult
from rwq.toolkit.abi.run import CASES, SHAPE_CASES, run_conformance

__all__ = ["CASES", "SHAPE_CASES", "AbiInputError", "AbiReport", "CaseResult", "run_conformance"]
