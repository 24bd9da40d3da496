"""The governance portal.

`portal` holds two things in separate modules: the project's wiring (settings, urls,
wsgi/asgi: the top, which imports every app) and the base every app builds on
(accounts, API tokens, the audit ledger, the UI shell, health: the bottom, which
imports no app).
"""

# Load the Celery app whenever Django starts so that @shared_task binds to it.
from worker.celery import app as celery_app

__all__ = ["celery_app"]
