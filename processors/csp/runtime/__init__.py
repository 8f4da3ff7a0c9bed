"""The CSP runtime on Kafka: deployed systems run as event-sourced instances.

* :mod:`.model` — deployments (compiled LTS + channel roles) and instance state.
* :mod:`.compiled` — the compact byte form of a compiled LTS (``CspRegistryRecord.compiled``).
* :mod:`.step` — pure application of one command to one instance.
* :mod:`.fold` — pure fold / replay / deduplication over the event log.
* :mod:`.records` — Avro record dicts of the runtime (commands, events, refusals, snapshots).
* :mod:`.encoding` — hand-written Avro encoders/decoders of the hot-path records.
* :mod:`.topics` — topic names (optionally namespaced); :mod:`.partitioning` — Kafka's murmur2.
* :mod:`.deploy` — type-check, verify and compile a CSPm file into a deployment.
* :mod:`.conform` — recorded traces against a specification (traces refinement).
* :mod:`.registry` — the deployment store on ``csp.registry``.
* :mod:`.processor` — the engine processor (consumes ``csp.commands``).
* :mod:`.worker` — ``python -m processors.csp.runtime.worker``.
"""
