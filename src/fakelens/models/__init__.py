"""Model registry and cards. Importing this package does not import Keras (see `registry`)."""

from fakelens.models.card import ModelCard
from fakelens.models.registry import available_models, create_model, get_spec

__all__ = ["ModelCard", "available_models", "create_model", "get_spec"]
