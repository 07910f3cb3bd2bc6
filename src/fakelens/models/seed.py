"""`seed`: the original notebook's CNN, layer for layer (11,825 parameters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakelens.config import INPUT_SIZE
from fakelens.models.preprocess import raw_image_input
from fakelens.models.registry import register_model

if TYPE_CHECKING:  # Keras loads when a model is built, not when the registry lists it
    import keras


@register_model("seed", "The original notebook's CNN: 3 x (Conv+ReLU+MaxPool), Dense 32, sigmoid P(REAL).")
def build_seed(input_size: tuple[int, int] = INPUT_SIZE) -> keras.Model:
    import keras
    from keras import layers

    inputs, x = raw_image_input(input_size)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="seed")
