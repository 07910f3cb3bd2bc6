"""Metrics and the evaluation of a detector on a labelled test set."""
