"""What CSPm scripts mean: values, builtins, the evaluator, process terms, Roscoe's
firing rules (:mod:`.operational`), LTSs and the front end that loads a script.

Imports only :mod:`processors.csp.language`.
"""
