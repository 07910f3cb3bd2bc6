"""Judging many files: the scan loop, the result files it writes, and the Ray engine for clusters.

The Ray engine imports Ray itself, so importing this package costs nothing.
"""
