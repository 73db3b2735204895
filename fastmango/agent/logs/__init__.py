"""The agent's logs part (see its service and api modules)."""
