"""tf.data input pipelines over cached uint8 arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from fakelens.training.augment import augment_batch


def steps_per_epoch(count: int, batch_size: int) -> int:
    return math.ceil(count / batch_size)


@dataclass(frozen=True)
class Shard:
    """Worker `index` of `count` takes its slice of every global batch (multi-worker training).

    All workers compute the same global batches (same seed, same epoch order); worker k keeps
    rows [k*n//count, (k+1)*n//count) of each. So every example is seen once per epoch across
    the workers, and the workers together take the very steps one worker would.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, {self.count}); received {self.index}")


def _sharded_rows(order: tf.Tensor, count: int, batch_size: int, shard: Shard) -> tf.data.Dataset:
    """Global batches of row indices from `order`, cut to `shard`'s slice of each.

    A last batch of fewer rows than workers would leave some worker an empty slice (a NaN
    loss): it is topped up with the epoch's first rows, repeating fewer than `shard.count`.
    """
    remainder = count % batch_size
    if 0 < remainder < shard.count:
        order = tf.concat([order, order[: shard.count - remainder]], 0)
    rows = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    if shard.count == 1:
        return rows

    def cut(batch: tf.Tensor) -> tf.Tensor:
        size = tf.shape(batch, out_type=tf.int64)[0]
        return batch[shard.index * size // shard.count : (shard.index + 1) * size // shard.count]

    return rows.map(cut)


def training_batches(
    images: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    first_epoch: int = 0,
    augment: bool = False,
    shard: Shard = Shard(),
) -> tf.data.Dataset:
    """Endless (uint8 images, float32 targets) batches, epoch after epoch from `first_epoch`.

    Epoch e's order is a stateless shuffle keyed by (seed, e): a run resumed at epoch e sees
    exactly the batches an uninterrupted run would have. Batches are gathered from the arrays
    in one op each, not shuffled element by element. With `augment`, each batch is augmented
    with draws keyed by (seed, epoch, batch, shard). `batch_size` is the global batch: with a
    `shard`, each batch holds this worker's slice of it.
    """
    images_t = tf.constant(np.asarray(images))
    targets_t = tf.constant(targets.astype(np.float32))
    count = len(targets)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=key)
        rows = _sharded_rows(order, count, batch_size, shard)
        # Augmentation draws get their own key per (seed, epoch, batch, shard).
        return rows.enumerate().map(
            lambda index, batch: (tf.stack([key[0] + 1, epoch * 2**20 + index + shard.index * 2**40]), batch)
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


def evaluation_batches(
    images: np.ndarray, targets: np.ndarray, batch_size: int, *, shard: Shard = Shard()
) -> tf.data.Dataset:
    """(images, targets) batches in order, once; with a `shard`, this worker's slice of each."""
    if shard.count == 1:
        dataset = tf.data.Dataset.from_tensor_slices((np.asarray(images), targets.astype(np.float32)))
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    images_t = tf.constant(np.asarray(images))
    targets_t = tf.constant(targets.astype(np.float32))
    rows = _sharded_rows(tf.range(len(targets), dtype=tf.int64), len(targets), batch_size, shard)
    return rows.map(lambda batch: (tf.gather(images_t, batch), tf.gather(targets_t, batch))).prefetch(
        tf.data.AUTOTUNE
    )
