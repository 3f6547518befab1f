"""Kubernetes: sidecar injection (``inject``), for the admission webhook and
``pillion inject``, and the injector's own manifests. The injection logic is pure:
dicts in, dicts out; only the webhook server does I/O."""
