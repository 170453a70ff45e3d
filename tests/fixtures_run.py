"""Fixtures that train tiny models and predict tiny runs (owner: classifier work)."""
