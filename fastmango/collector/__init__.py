"""Collectors read the world and return samples. Nothing else.

Each module holds one source: ``host`` (psutil, node_exporter names), ``container``
(the agent's own cgroup, cAdvisor names). Each exposes a class following
:class:`fastmango.collector.base.Collector`.
"""
