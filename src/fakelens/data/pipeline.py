"""tf.data input pipelines over cached uint8 arrays."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def steps_per_epoch(count: int, batch_size: int) -> int:
    return math.ceil(count / batch_size)


def training_batches(
    images: np.ndarray, targets: np.ndarray, batch_size: int, *, seed: int, first_epoch: int = 0
) -> tf.data.Dataset:
    """Endless (uint8 images, float32 targets) batches, epoch after epoch from `first_epoch`.

    Epoch e's order is a stateless shuffle keyed by (seed, e): a run resumed at epoch e sees
    exactly the batches an uninterrupted run would have. Batches are gathered from the arrays
    in one op each, not shuffled element by element.
    """
    images_t = tf.constant(np.asarray(images))
    targets_t = tf.constant(targets.astype(np.float32))
    count = len(targets)

    def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=key)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    return (
        tf.data.Dataset.range(first_epoch, 2**62)
        .flat_map(epoch_order)
        .map(lambda rows: (tf.gather(images_t, rows), tf.gather(targets_t, rows)))
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_batches(images: np.ndarray, targets: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """(images, targets) batches in order, once."""
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(images), targets.astype(np.float32)))
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
