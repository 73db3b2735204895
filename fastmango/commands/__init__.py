"""Command groups of the ``fastmango`` CLI, one module per part (logs, alerts, scale,
deploy, billing). Each module imports only :mod:`click` at the top (``fastmango --help``
stays fast) and lists its commands in ``COMMANDS``; :mod:`fastmango.cli` adds them."""
