"""Making models: the run directory and its resume, the tf.data pipeline and augmentation,
calibration, multi-worker training, and the probe heads on frozen encoders.

Each module imports TensorFlow itself, so importing this package costs nothing.
"""
