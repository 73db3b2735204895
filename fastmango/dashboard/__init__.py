"""The browser dashboard: a static single-page UI and the few endpoints it needs.

:func:`mount` adds to the agent's FastAPI app:

* ``/`` — the UI shell (``static/index.html``), with the session's CSRF token in a meta
  tag and one ``<script>`` per page file in ``static/pages/`` (a later capability adds
  its page by adding one file that calls ``FM.register``);
* ``/static/…`` — the shell's JS and CSS and the vendored uPlot (MIT, ``vendor/``); no
  build step and nothing fetched from the network;
* ``GET /api/dashboard/overview?range=1h`` — every Overview chart and headline figure in
  one document, downsampled to at most 500 points per line (:mod:`.overview`);
* ``GET /api/stream`` — Server-Sent Events, one ``collect`` event each time collectors
  publish, so open pages refresh without polling.

Who may reach them is decided by :mod:`fastmango.agent.auth`, like the rest of the API.
"""

from __future__ import annotations

from fastmango.dashboard.routes import mount

__all__ = ["mount"]
