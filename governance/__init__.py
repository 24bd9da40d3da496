"""Models and versions, lineage, model cards, review board policies, reviews, gates, rollouts."""
