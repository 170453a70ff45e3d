"""Fixtures that draw tiny demo datasets (owner: demo-data work)."""
