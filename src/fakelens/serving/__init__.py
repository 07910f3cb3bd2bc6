"""The HTTP API and web page: a thin shell over `Detector` (install the `serve` extra)."""
