"""AI agents as CSP processes: model calls on the engine, protocol-constrained choice,
the agent driver, the agent registry and multi-agent collaboration (docs/agents.md)."""
