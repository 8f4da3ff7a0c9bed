"""CSPm as a language: tokens, syntax trees, parsing, modules and type inference.

Imports nothing from :mod:`processors.csp.semantics`, :mod:`processors.csp.check`
or :mod:`processors.csp.runtime`.
"""
