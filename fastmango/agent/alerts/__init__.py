"""The agent's alerts part (see its service and api modules)."""
