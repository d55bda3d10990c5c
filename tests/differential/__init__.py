"""Data and helpers of the differential suite (tests/test_differential.py)."""
