"""Celery app, beat schedule and the adapters (backends) to outside systems.

Imports no portal app: apps keep their tasks in their own tasks.py.
"""
