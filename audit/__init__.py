"""Mask Audit: the library behind the app (indexing, demo data, classifier, runs, detectors, reviews).

Never imports streamlit; pages and the CLI (`python -m audit`) assemble it.
"""
__version__ = "0.1.0"
