"""The review board: policies, reviews and decisions, deployment gates.

A sub-app of governance (label `reviews`), with its own migrations.
"""
