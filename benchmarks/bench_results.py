"""Registry of benchmark results shared by test_bench_ops.py and conftest.py (case -> backend -> stats)."""
RESULTS: dict = {}
