"""Quantum operations on Kafka, simulated with qiskit-aer (see docs/quantum.md).

``quantum.requests`` -> :class:`~processors.quantum.processor.QuantumProcessor` -> ``quantum.results``.
"""
