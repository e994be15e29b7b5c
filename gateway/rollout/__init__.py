"""Progressive rollout: the state machine and gates (pure), the shared state store, the
driver that judges each interval, the weights workers apply, and the CLI."""
