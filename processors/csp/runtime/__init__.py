"""The CSP runtime on Kafka: deployed systems run as event-sourced instances.

* :mod:`.model` — deployments (compiled LTS + channel roles) and instance state.
* :mod:`.compiled` — the compact byte form of a compiled LTS (``CspRegistryRecord.compiled``).
* :mod:`.step` — pure application of one command to one instance.
* :mod:`.fold` — pure fold / replay / deduplication over the event log.
* :mod:`.records` — Avro record dicts of the runtime (commands, events, refusals, snapshots).
* :mod:`.registry` — the deployment store on ``csp.registry``.
* :mod:`.processor` — the engine processor (consumes ``csp.commands``).
* :mod:`.worker` — ``python -m processors.csp.runtime.worker``.
"""
