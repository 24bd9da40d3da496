"""Review board models: policies, reviews, decisions."""
