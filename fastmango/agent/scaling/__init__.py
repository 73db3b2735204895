"""The agent's scaling part (see its service and api modules)."""
