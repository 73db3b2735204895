"""Talks to platforms: deploy, status, releases, rollback, scale (see platform.py)."""
