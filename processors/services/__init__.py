"""Platform services (quantum, ledger, agents) and how CSP channels bind to them.

``api`` holds the contract every service implements; the binding runtime that moves
records between CSP instances and services lives beside it (see docs/services.md).
"""
