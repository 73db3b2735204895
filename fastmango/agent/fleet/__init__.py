"""The agent's fleet part: many sidecars of one app acting as one through its PostgreSQL.

- :mod:`.schema` — the ``fastmango`` schema, migrated by version under an advisory lock;
- :mod:`.election` — leader election with ``pg_try_advisory_lock`` on its own connection;
- :mod:`.rollups` — 10-second roll-ups of the signals and the fleet's sums and averages
  (pure);
- :mod:`.service` — the service other parts consult (``host.services["fleet"]``);
- :mod:`.keda` — the answer of ``/api/keda`` (pure); :mod:`.api` — ``/api/fleet``,
  ``/api/keda``.
"""
