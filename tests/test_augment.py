"""Training augmentation: shapes, determinism per key, and each part's effect."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import random_image

from fakelens.training import augment
from fakelens.training.pipeline import training_batches


def batch(n: int = 16) -> tf.Tensor:
    return tf.constant(np.stack([random_image(i) for i in range(n)]))


def test_same_key_same_result_other_key_other_result():
    images = batch()
    a = augment.augment_batch(images, tf.constant([1, 2], tf.int64)).numpy()
    b = augment.augment_batch(images, tf.constant([1, 2], tf.int64)).numpy()
    c = augment.augment_batch(images, tf.constant([1, 3], tf.int64)).numpy()
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_shift_is_an_exact_integer_translation():
    images = tf.cast(batch(4), tf.float32)
    shifted = augment._shift(images, tf.constant([0, 7], tf.int64), 32, 32).numpy()
    padded = np.pad(images.numpy(), [(0, 0), (3, 3), (3, 3), (0, 0)], mode="reflect")
    for out, source in zip(shifted, padded):
        windows = [source[dy : dy + 32, dx : dx + 32] for dy in range(7) for dx in range(7)]
        assert any(np.allclose(out, window, atol=1e-3) for window in windows)


def test_jpeg_part_changes_pixels_but_keeps_content():
    images = batch(4)
    out = augment._jpeg(images, tf.constant([0, 1], tf.int64)).numpy().astype(int)
    difference = np.abs(out - images.numpy()).mean()
    assert 0 < difference < 60


def test_blur_keeps_the_mean_and_lowers_contrast():
    images = tf.cast(batch(4), tf.float32)
    out = augment._blur(images, tf.constant([0, 1], tf.int64)).numpy()
    assert np.allclose(out.mean(), images.numpy().mean(), rtol=0.02)
    assert out.std() < images.numpy().std()


def test_augmented_batches_are_repeatable_across_runs_and_resume():
    images = np.stack([random_image(i) for i in range(40)])
    targets = np.arange(40) % 2
    first = training_batches(images, targets, 8, seed=3, augment=True)
    resumed = training_batches(images, targets, 8, seed=3, first_epoch=1, augment=True)
    uninterrupted = [x.numpy() for x, _ in first.take(10)]
    assert np.array_equal(uninterrupted[5], next(iter(resumed))[0].numpy())


def test_a_batch_of_one_survives_every_draw():
    image = batch(1)
    for k in range(8):  # some keys choose no image for JPEG, some choose it
        assert augment.augment_batch(image, tf.constant([k, 1], tf.int64)).shape == (1, 32, 32, 3)


def test_jpeg_coding_of_no_chosen_images_keeps_the_batch_shape():
    """A batch where no image is drawn for JPEG (likelier with small last batches) must work."""
    coded = tf.function(
        augment._jpeg,
        input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.uint8), tf.TensorSpec([2], tf.int64)],
    )(tf.zeros((0, 8, 8, 3), tf.uint8), tf.constant([1, 2], tf.int64))
    assert coded.shape == (0, 8, 8, 3)
