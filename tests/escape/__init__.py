"""The escape suite's attacks and host-side bait (see tests/test_escape.py)."""
