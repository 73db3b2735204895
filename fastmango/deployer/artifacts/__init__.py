"""Deploy artifacts generated from the app's own project: Dockerfile and .dockerignore,
Kubernetes manifests (Deployment with the agent as a sidecar, Service, PDB, HPA or KEDA),
a GitHub Actions CD workflow, ``fly.toml`` and ``render.yaml``.

Every generator is a pure function of a small typed description (:class:`AppSpec` from
:func:`fastmango.deployer.artifacts.project.detect`, plus the generator's options) and
returns text; the commands in :mod:`fastmango.commands.generate` write it.
"""
