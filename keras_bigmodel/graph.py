"""Helpers for the functions TensorFlow traces."""


def plain(function):
    """Marks a function tf.data traces as plain TensorFlow, traced as written.

    tf.data runs AutoGraph over every function it traces unless told not to. Rewriting a
    function's source costs about 0.07 s each, about a second of every run's start, and
    these functions have no Python control flow over tensors to convert.
    """
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(function)
