"""Runnable speed comparisons against peers (`python -m benchmarks.<name>`)."""
