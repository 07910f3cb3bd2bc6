"""tf.data input pipelines over cached uint8 arrays."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from fakelens.data.augment import augment_batch


def steps_per_epoch(count: int, batch_size: int) -> int:
    return math.ceil(count / batch_size)


def training_batches(
    images: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    first_epoch: int = 0,
    augment: bool = False,
) -> tf.data.Dataset:
    """Endless (uint8 images, float32 targets) batches, epoch after epoch from `first_epoch`.

    Epoch e's order is a stateless shuffle keyed by (seed, e): a run resumed at epoch e sees
    exactly the batches an uninterrupted run would have. Batches are gathered from the arrays
    in one op each, not shuffled element by element. With `augment`, each batch is augmented
    with draws keyed by (seed, epoch, batch).
    """
    images_t = tf.constant(np.asarray(images))
    targets_t = tf.constant(targets.astype(np.float32))
    count = len(targets)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=key)
        rows = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        # Augmentation draws get their own key per (seed, epoch, batch).
        return rows.enumerate().map(
            lambda index, batch: (tf.stack([key[0] + 1, epoch * 2**20 + index]), batch)
        )

    def gather(key: tf.Tensor, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.gather(images_t, rows)
        return (augment_batch(batch, key) if augment else batch), tf.gather(targets_t, rows)

    return (
        tf.data.Dataset.range(first_epoch, 2**62)
        .flat_map(epoch_batches)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_batches(images: np.ndarray, targets: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """(images, targets) batches in order, once."""
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(images), targets.astype(np.float32)))
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
