"""Training runs: the pipelines that produce model versions, driven by Celery.

A sub-app of governance (label `training`) with its own migrations. The training code
itself lives in the top-level `pipelines` package (no Django); the Vertex AI backend in
`worker/backends/vertex_pipelines.py`.
"""
