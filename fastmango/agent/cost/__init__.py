"""The agent's cost part (see its service and api modules)."""
