"""Training-time augmentation on whole uint8 batches, as TensorFlow ops (no Python loop).

What images meet on the web: mirror flips, small shifts, JPEG re-compression (quality 50-95),
down-then-up scaling, mild blur and sensor-like noise. Every draw is stateless and keyed by
(seed, epoch, batch), so a resumed run augments exactly as an uninterrupted one would.
"""

from __future__ import annotations

import tensorflow as tf

#: Largest shift in pixels (reflect-padded, then cropped back).
SHIFT = 3
#: Chance that an image is re-compressed as JPEG, and the quality range.
JPEG_P, JPEG_QUALITY = 0.3, (50, 95)
#: Chance of a down-then-up rescale, and the range of the intermediate scale.
RESCALE_P, RESCALE = 0.1, (0.5, 0.9)
#: Chance of a Gaussian blur, and the range of its sigma in pixels.
BLUR_P, BLUR_SIGMA = 0.1, (0.4, 1.2)
#: Chance of additive Gaussian noise, and the largest sigma on the 0..255 scale.
NOISE_P, NOISE_SIGMA = 0.15, 8.0


def augment_batch(images: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Augment an (N, H, W, 3) uint8 batch; `key` is an int64 pair that fixes every draw."""
    keys = tf.random.experimental.stateless_split(key, num=12)
    height, width = images.shape[1], images.shape[2]
    count = tf.shape(images)[0]
    x = tf.cast(images, tf.float32)
    x = tf.image.stateless_random_flip_left_right(x, seed=keys[0])
    x = _shift(x, keys[1], height, width)
    x = _where(_chance(RESCALE_P, count, keys[2]), _rescale(x, keys[3], height, width), x)
    x = _where(_chance(BLUR_P, count, keys[4]), _blur(x, keys[5]), x)
    sigma = tf.random.stateless_uniform([count, 1, 1, 1], keys[6], 0.0, NOISE_SIGMA)
    noise = tf.random.stateless_normal(tf.shape(x), keys[7]) * sigma
    x = _where(_chance(NOISE_P, count, keys[8]), x + noise, x)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
    # JPEG coding is the costly part: run it on the chosen images only.
    chosen = tf.where(_chance(JPEG_P, count, keys[9]))
    return tf.tensor_scatter_nd_update(x, chosen, _jpeg(tf.gather_nd(x, chosen), keys[10]))


def _chance(p: float, count: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_uniform([count], key) < p


def _where(mask: tf.Tensor, changed: tf.Tensor, original: tf.Tensor) -> tf.Tensor:
    return tf.where(mask[:, None, None, None], changed, original)


def _shift(x: tf.Tensor, key: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Reflect-pad by SHIFT and crop each image back at its own integer offset."""
    padded = tf.pad(x, [[0, 0], [SHIFT, SHIFT], [SHIFT, SHIFT], [0, 0]], mode="REFLECT")
    count = tf.shape(x)[0]
    offset = tf.cast(tf.random.stateless_uniform([count, 2], key, 0, 2 * SHIFT + 1, tf.int32), tf.float32)
    span_y, span_x = float(height + 2 * SHIFT - 1), float(width + 2 * SHIFT - 1)
    boxes = tf.stack(
        [
            offset[:, 0] / span_y,
            offset[:, 1] / span_x,
            (offset[:, 0] + height - 1) / span_y,
            (offset[:, 1] + width - 1) / span_x,
        ],
        axis=1,
    )
    # Boxes on the pixel grid at the output size: an exact integer crop, no interpolation.
    return tf.image.crop_and_resize(padded, boxes, tf.range(count), (height, width))


def _rescale(x: tf.Tensor, key: tf.Tensor, height: int, width: int) -> tf.Tensor:
    scale = tf.random.stateless_uniform([], key, *RESCALE)
    small = tf.cast(tf.round(scale * [height, width]), tf.int32)
    down = tf.image.resize(x, small, method="bilinear", antialias=True)
    return tf.image.resize(down, (height, width), method="bilinear")


def _blur(x: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    sigma = tf.random.stateless_uniform([], key, *BLUR_SIGMA)
    taps = tf.range(-2.0, 3.0)
    kernel = tf.exp(-(taps**2) / (2 * sigma**2))
    kernel /= tf.reduce_sum(kernel)
    channels = x.shape[-1]
    rows = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    cols = tf.tile(kernel[None, :, None, None], [1, 1, channels, 1])
    padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    blurred = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, cols, [1, 1, 1, 1], "VALID")


def _jpeg(x: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Re-compress every image at its own random quality (a graph loop, not a Python one)."""
    keys = tf.random.experimental.stateless_split(key, num=tf.shape(x)[0])
    return tf.map_fn(
        lambda args: tf.image.stateless_random_jpeg_quality(args[0], *JPEG_QUALITY, seed=args[1]),
        (x, keys),
        # The full image shape: with no image chosen, map_fn must still know what to stack.
        fn_output_signature=tf.TensorSpec(x.shape[1:], tf.uint8),
    )
