"""tf.data input pipelines over cached uint8 arrays."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def array_dataset(
    images: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
) -> tf.data.Dataset:
    """Batches of (uint8 images, float32 targets); reshuffled every epoch when `shuffle`."""
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(images), targets.astype(np.float32)))
    if shuffle:
        dataset = dataset.shuffle(len(targets), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
