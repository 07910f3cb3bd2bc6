"""Model registry: every architecture module registers itself on import."""

from fakelens.models import patchres, seed  # noqa: F401  (each registers itself)
from fakelens.models.card import ModelCard
from fakelens.models.registry import available_models, create_model, get_spec

__all__ = ["ModelCard", "available_models", "create_model", "get_spec"]
