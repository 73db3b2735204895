"""The agent's deploys part (see its service and api modules)."""
