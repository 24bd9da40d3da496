"""The model server: serves the three models' versions with a stable/canary split.

Its own process (`python -m serving`), built on FastAPI and uvicorn; imports no Django
app. What it serves comes from a routing document (`serving.routing`) that the portal's
local rollout backend rewrites and the server re-reads without a restart.
"""
