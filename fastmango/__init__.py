"""fastmango: a sidecar agent that watches, decides and acts, and the `fastmango` CLI."""

__version__ = "0.1.0"
