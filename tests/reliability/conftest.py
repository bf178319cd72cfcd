"""Reliability tests share the backend fixtures of tests/conftest.py; plain helpers live in
reliability_harness.py (a conftest cannot be imported by name reliably)."""
