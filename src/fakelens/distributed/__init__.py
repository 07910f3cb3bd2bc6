"""Scaling out: a scan on Ray Data (`ray_scan`), training on several workers (`multiworker`).

Each submodule imports its engine (Ray, TensorFlow) itself, so importing this package costs nothing.
"""
