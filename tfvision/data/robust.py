"""Error-tolerant decoding: corrupt examples are skipped and counted, never fatal.

`map_skipping_errors(dataset, fn)` is `dataset.map(fn)` except that an element whose
`fn` raises (a truncated JPEG, a label of the wrong size, ...) is dropped and counted.
Each kept element comes out as `(fn(element), skipped)`, where `skipped` (int64) is the
number of elements dropped since the previous kept one, so summing `skipped` over
everything a training job consumes counts the corrupt examples exactly, across
replicas and workers alike (`SkippedExamples` does that as a metric).

How: every element is mapped inside a one-element dataset with `ignore_errors()`,
followed by a placeholder flagged as failed; `take(1)` keeps the first of the two, so
an element yields either its result or the flagged placeholder, and a `scan` turns the
flags into counts. The one-element datasets run through `interleave`, in parallel.
"""
import tensorflow as tf
import tf_keras


def _placeholder(spec):
  """A zero / empty value matching a TensorSpec (unknown dimensions become 0)."""
  shape = [0 if d is None else d for d in spec.shape.as_list()]
  if spec.dtype == tf.string:
    return tf.fill(shape, "")
  return tf.zeros(shape, spec.dtype)


def map_skipping_errors(dataset, fn, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=None):
  """`dataset.map(fn)` that drops and counts the elements whose `fn` fails.

  Args:
    dataset: a tf.data.Dataset.
    fn: the function to map (decoding and parsing).
    num_parallel_calls: parallelism of the interleave.
    deterministic: output order guarantee (None: the dataset options' default).

  Returns:
    A dataset of `(fn(element), skipped)` with `skipped` int64 (see the module
    docstring).
  """

  def attempt(*element):
    element = element[0] if len(element) == 1 else element
    tried = tf.data.Dataset.from_tensors(element).map(lambda *x: (fn(*x), True))
    tried = tried.ignore_errors()
    failed = tf.nest.map_structure(_placeholder, tried.element_spec[0])
    fallback = tf.data.Dataset.from_tensors((failed, False))
    return tried.concatenate(fallback).take(1)

  attempts = dataset.interleave(attempt, cycle_length=None, block_length=1,
                                num_parallel_calls=num_parallel_calls,
                                deterministic=deterministic)

  def count(pending, item):
    value, ok = item
    skipped = tf.where(ok, pending, tf.constant(-1, tf.int64))
    return tf.where(ok, tf.constant(0, tf.int64), pending + 1), (value, ok, skipped)

  counted = attempts.scan(tf.constant(0, tf.int64), count)

  def keep(value, ok, skipped):
    del value, skipped
    return ok

  def drop_flag(value, ok, skipped):
    del ok
    return value, skipped

  return counted.filter(keep).map(drop_flag)


class SkippedExamples(tf_keras.metrics.Metric):
  """Total number of skipped (corrupt) examples seen by this process.

  `update_state(skipped)` adds the per-example counts of `map_skipping_errors`. The
  total is never reset (the trainer resets metrics after every loop; this one keeps
  counting), and sums over replicas.
  """

  def __init__(self, name="skipped_examples", **kwargs):
    super().__init__(name=name, **kwargs)
    self.total = self.add_weight("total", shape=(), initializer="zeros", dtype=tf.float32)

  def update_state(self, skipped, sample_weight=None):
    del sample_weight
    added = tf.reduce_sum(tf.cast(skipped, tf.float32))
    return self.total.assign_add(added)

  def result(self):
    return tf.identity(self.total)

  def reset_state(self):
    # Deliberately cumulative: see the class docstring.
    pass

  def reset_total(self):
    """Sets the count back to zero."""
    self.total.assign(0.0)
