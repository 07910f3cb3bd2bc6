"""Preprocessing inside the model, so a saved `.keras` file takes raw uint8 images of any size."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Keras loads when a model is built, not when the registry lists it
    import keras


def raw_image_input(input_size: tuple[int, int]) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """An input of raw 0..255 RGB pixels, resized to `input_size` and rescaled to [0, 1].

    fakelens itself resizes with Pillow before the model (see `data.decode.resize_to`), so the
    Resizing layer is a no-op there; it serves users who call the saved model directly.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = layers.Resizing(*input_size, antialias=True, name="resize")(inputs)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    return inputs, x
