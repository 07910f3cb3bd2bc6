"""`patchres`: a small residual CNN that keeps every pixel's detail.

A 2x2 stride-2 "patchify" stem turns 32x32x3 into 16x16xW without discarding anything a
max-pool would (generator artefacts live in the finest detail), then residual stages of
3x3 convolutions with batch norm, global average pooling and a sigmoid P(AI).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from fakelens.config import INPUT_SIZE, Recipe
from fakelens.models.preprocess import raw_image_input
from fakelens.models.registry import register_model

if TYPE_CHECKING:  # Keras loads when a model is built, not when the registry lists it
    import keras

RECIPE = Recipe(
    epochs=13, batch_size=128, learning_rate=3e-3, weight_decay=5e-4, schedule="cosine", augment=True
)
#: The shipped CIFAKE model's: 22 epochs of the deep variant fit the hour on 2 cores (about 125 s
#: each at 760 images/s in float32; docs/experiments.md section 9).
DEEP_RECIPE = replace(RECIPE, epochs=22)


def _conv_bn(x: keras.KerasTensor, filters: int, *, kernel: int = 3, stride: int = 1, relu: bool = True):
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x) if relu else x


def _residual(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    from keras import layers

    y = _conv_bn(x, filters)
    y = _conv_bn(y, filters, relu=False)
    return layers.ReLU()(layers.Add()([x, y]))


@register_model(
    "patchres",
    "Patchify stem + residual 3x3 stages (0.2M parameters, 40 MFLOPs); sigmoid P(AI).",
    output="p_ai",
    recipe=RECIPE,
)
def build_patchres(
    input_size: tuple[int, int] = INPUT_SIZE, width: int = 32, blocks: tuple[int, ...] = (2, 2)
) -> keras.Model:
    import keras
    from keras import layers

    inputs, x = raw_image_input(input_size)
    x = _conv_bn(x, width, kernel=2, stride=2)
    for stage, count in enumerate(blocks):
        if stage:
            width *= 2
            x = _conv_bn(x, width, stride=2)
        for _ in range(count):
            x = _residual(x, width)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="patchres")


@register_model(
    "patchres-deep",
    "patchres with a third stage (128 channels at 4x4): 0.87M parameters, 62 MFLOPs; sigmoid P(AI).",
    output="p_ai",
    recipe=DEEP_RECIPE,
)
def build_patchres_deep(input_size: tuple[int, int] = INPUT_SIZE) -> keras.Model:
    return build_patchres(input_size, width=32, blocks=(2, 2, 2))
