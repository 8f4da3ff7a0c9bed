"""Refinement checking: compilation of process terms to LTSs, the state-space
explorers and the checker, and the assertion runner (:mod:`.verify`).

Imports :mod:`processors.csp.language` and :mod:`processors.csp.semantics`.
"""
