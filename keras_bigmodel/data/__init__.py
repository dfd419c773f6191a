"""Readers that turn files into arrays and `tf.data` pipelines: tables, text, images."""
