"""The conformance suite (see conftest.py)."""
