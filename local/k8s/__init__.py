"""Kubernetes manifests for the local stack, rendered from the typed config (``make k8s ENV=...``).

``render`` builds the documents, ``validate`` checks them against the Kubernetes OpenAPI schemas, ``checkov`` runs
checkov's Kubernetes checks (in ``.venv-checkov``), ``review`` writes the ops page. See docs/KUBERNETES.md.
"""
