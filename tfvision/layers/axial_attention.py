"""Position-sensitive axial attention (Wang et al., "Axial-DeepLab", ECCV 2020).

One layer attends along one axis of a [B, H, W, C] map (every column for "height",
every row for "width") with the position-sensitive self-attention of the paper's Eq. 4:

    y_o = sum_p softmax_p(q_o.k_p + q_o.r^q_{p-o} + k_p.r^k_{p-o}) (v_p + r^v_{p-o})

where q, k, v come from one bias-free 1x1 projection of the input and r^q, r^k, r^v are
learned relative position embeddings, per head. The sum runs over the span-m window of
o (the paper's N_{1 x m}(o)); without `span` (or when the span covers the axis) it runs
over the whole axis. Where the paper is silent, deeplab2
(`model/layers/axial_layers.py`, `positional_encodings.py`), which produced the
published checkpoints, decided:

- q, k and v come from one projection followed by one batch norm over the 2 * key_depth
  + value_depth channels; the kernel is truncated-normal with stddev C ** -0.5.
- The three similarity terms are batch-normalised separately (per term and head) before
  they are summed, and the two retrieved terms (content and value embedding) are
  batch-normalised separately (per term and channel) before they are summed: the "BN"
  column of the paper's Table 1. `norm=None` removes every batch norm of the layer.
- Each embedding table holds 2 * max_span - 1 relative distances, -(max_span - 1) ..
  max_span - 1, and is initialised truncated-normal with stddev 1. deeplab2 fixes
  max_span to 255 (`MAX_SPAN`), which our default repeats so the parameter counts
  match. Without a span, an axis of length L <= max_span uses the table's central
  2L - 1 rows and a longer axis raises ValueError (deeplab2 clips distances beyond
  MAX_SPAN instead, and raises NotImplementedError beyond its 129-long query block and
  for local attention, which it does not implement).

Local attention (`span` = m, odd, <= max_span; Eq. 4 with a span-m window). The paper
defines N_{1 x m}(o) as the m positions centred on o and studies m for Cityscapes; its
main panoptic results use m = 65 (the authors in csrhddlam/axial-deeplab #22 and #28),
and neither it nor deeplab2 says what a window does at the border of the axis. Here the
window keeps its m positions and shifts inside the axis there: the query at o attends to
positions clip(o - (m - 1) / 2, 0, L - m) .. + m - 1. So every query attends to exactly
m keys (no padding keys, the softmax always normalises over m terms), an axis of m
positions or fewer is attended globally (as in the authors' PyTorch code, whose span,
`kernel_size`, is the axis length for global attention: csrhddlam/axial-deeplab #22,
#30), and the distances a
window shows stay within +-(m - 1), which the table's central 2m - 1 rows hold: the
same weights work at every input size, and a model trained globally on axes up to m
long computes the same function with span m. Batch statistics of the similarity terms
(training) cover the L * m window entries.

The computation (`LocalPlan`) splits the kept queries: those whose window is shifted
(o < (m - 1) / 2 or o > L - 1 - (m - 1) / 2) share one window at each end of the axis
and run the global computation against its m keys; the others, whose window is centred
on them, run in blocks of up to DEFAULT_QUERY_BLOCK queries. Per block, q.k is one
batched matmul against the (block - 1) * stride + m keys covering the block's windows,
and each query's m entries are cut out by a skew (pad, reshape, slice: row t's window
starts at column stride * t); q.r^q and the value-embedding retrieval are single dense
matmuls with the m central distances (the same for every centred window); k.r^k is one
dense matmul of every key with them, skewed to the windows; the content retrieval skews
the weights back into the blocks' key columns (zeros elsewhere). No gathers over
logits, no masks (int8 friendly: every entry is a real logit), and the same ops run
under XLA and in TFLite. A first version gathered every window entry (tf.gather of the
flat logits) instead of the skews: gathers along a non-leading axis copy one element at
a time, and it ran 1.5x slower than global attention on a 129-long axis.

Relative embeddings are gathered from the table's central 2L - 1 rows with the static
index matrix p - o + L - 1, giving [L, L, depth], and every term is one `tf.einsum` or
batched matmul: no Python loop over positions or heads. The terms with a relative
embedding are matmuls batched over the query position o (q.r^q, the value-embedding
retrieval) or the key position p (k.r^k), with explicit 3-D transposes to and from the
[B * X * heads, Lq, L] logits: TF's einsum does the same with 5-D transposes, which
measured slower on CPU (q.r^q and k.r^k: 72 ms as einsums, 45 ms as below, in one
height pass over a batch of 8 56 x 56 maps).

At inference every batch norm of the layer is an affine map with fixed statistics, and
the layer folds them instead of running them (the same function, fewer passes over
memory; `training=True` runs the reference computation with batch statistics):

- the q/k/v norm folds into the projection: kernel * scale, plus an offset;
- the similarity norms are per-head affine maps of the logits: their scales multiply q
  or k (a [.., heads, d] tensor, not the [B, X, heads, L, L] logits) and their offsets
  are constant along the softmax axis, so they cancel;
- the content output norm folds into the value columns of the projection (the retrieval
  is linear in v per channel, and the attention weights sum to one, so v * s + t
  retrieves content * s + t), and the value-embedding norm's offset joins it there; its
  scale multiplies the retrieved embeddings.

`strides` subsamples the output along the attended axis (deeplab2 strides an axial
block by subsampling after each pass). At inference only the kept query positions are
computed; in training every position is, then subsampled, so that the batch statistics
cover the same positions as deeplab2's.
"""
import numpy as np
import tensorflow as tf
import tf_keras

from tfvision.utils import validation

AXES = ("height", "width")
# deeplab2 `positional_encodings.MAX_SPAN`: the embedding tables hold 2 * 255 - 1 rows.
DEFAULT_MAX_SPAN = 255
# Interior queries per block of local attention (see `LocalPlan`).
DEFAULT_QUERY_BLOCK = 32

# Einsum subscripts: b batch, o query position, p key position along the attended
# axis, x the other spatial axis, n head, d depth per head.
_SUBSCRIPTS = {
    "height": dict(query="boxnd", key="bpxnd"),
    "width": dict(query="bxond", key="bxpnd"),
}
_LOGITS = "bxnop"


def relative_position_indices(length, max_span):
  """[length, length] int32 table indices: entry [o, p] is p - o + max_span - 1.

  Args:
    length: axis length L (<= max_span).
    max_span: the longest axis the embedding table covers.
  """
  positions = np.arange(length)
  return (positions[None, :] - positions[:, None] + max_span - 1).astype("int32")


def check_span(span, max_span):
  """Validates a local span: None (global attention) or an odd integer <= max_span.

  Only odd spans are accepted: the paper's window N_{1 x m}(o) is centred on its query,
  (m - 1) / 2 positions on each side, which an even m cannot be. A span-m window shows
  relative distances up to m - 1 (a query at the border sees the m positions next to
  it), so the tables of 2 * max_span - 1 rows must cover it: span <= max_span.
  """
  if span is None:
    return None
  validation.check_positive("span", span, integer=True)
  if span % 2 == 0:
    raise ValueError(f"span must be odd (the window is centred on its query, "
                     f"(span - 1) / 2 positions each side), received span={span!r}")
  if span > max_span:
    raise ValueError(f"span must be at most max_span={max_span!r} (the relative "
                     f"embeddings hold distances up to max_span - 1), received "
                     f"span={span!r}")
  return int(span)


def _inferring_output_shapes():
  """Whether tf_keras is tracing a layer only for its output shapes (the functional API
  calls layers on placeholders in a graph named "<layer>_scratch_graph"); the result is
  thrown away, so any branch with the right shapes will do."""
  graph = tf.compat.v1.get_default_graph()
  return getattr(graph, "name", "").endswith("_scratch_graph")


def _ceil_div(a, b):
  return -(-a // b)


class LocalPlan:
  """How span-m attention splits the kept queries of an axis longer than m.

  The window of the query at position o holds the m positions starting at
  clip(o - (m - 1) / 2, 0, length - m): centred on o, shifted inside the axis at its
  borders (see the module docstring). Kept queries are o = j * query_stride:
  - left (o < (m - 1) / 2): all share the window [0, m);
  - right (o > length - 1 - (m - 1) / 2): all share [length - m, length);
  - interior: window centred on o, in blocks of `block` queries; block i multiplies its
    queries with the `width` = (block - 1) * query_stride + m keys from
    `block_keys[i, 0]` on, which hold every window of the block.
  Sizes are Python ints for a static length, scalar int32 tensors otherwise.

  Args:
    length: the axis length (int or scalar tensor), > span.
    span: odd window length m.
    query_stride: keep every query_stride-th query, the first included.
    block: at most this many interior queries per block (None: DEFAULT_QUERY_BLOCK);
      a static length splits the interior into equal blocks.
  """

  def __init__(self, length, span, query_stride=1, block=None):
    block = DEFAULT_QUERY_BLOCK if block is None else block
    half = (span - 1) // 2
    self.length, self.span, self.query_stride = length, span, query_stride
    self.num_queries = _ceil_div(length, query_stride)
    self.left_end = _ceil_div(half, query_stride)
    self.right_start = (length - 1 - half) // query_stride + 1
    self.num_interior = self.right_start - self.left_end
    self.interior_start = query_stride * self.left_end
    static = isinstance(length, int)
    if static:
      # Equal blocks of at most `block` queries: no padded block of mostly nothing.
      block = max(1, _ceil_div(self.num_interior, max(1, _ceil_div(self.num_interior,
                                                                   block))))
    self.block = block
    self.width = query_stride * (block - 1) + span
    self.blocks = _ceil_div(self.num_interior, block)
    self.pad_queries = self.blocks * block - self.num_interior
    first_key = self.interior_start - half
    self.block_keys = (first_key + tf.range(self.blocks)[:, None] * (query_stride * block)
                       + tf.range(self.width)[None, :])
    beyond = first_key + query_stride * block * (self.blocks - 1) + self.width - length
    self.pad_keys = max(beyond, 0) if static else tf.maximum(beyond, 0)
    self.has_left = self.left_end > 0
    self.has_interior = self.num_interior > 0 if static else True
    self.has_right = self.right_start < self.num_queries if static else True

  def border_distances(self, side):
    """[queries, span] int32 p - o + span - 1 of the "left" or "right" border queries o
    and their window's keys p (indices into the 2 span - 1 central distances)."""
    if side == "left":
      queries = tf.range(self.left_end) * self.query_stride
      keys = tf.range(self.span)
    else:
      queries = tf.range(self.right_start, self.num_queries) * self.query_stride
      keys = self.length - self.span + tf.range(self.span)
    return keys[None, :] - queries[:, None] + (self.span - 1)


def _make_norm(norm, momentum, epsilon, axis, name):
  """A batch norm over `axis` ("batch" or "sync_batch"), or None when `norm` is None."""
  validation.check_in("norm", norm, ("batch", "sync_batch", None))
  if norm is None:
    return None
  cls = (tf_keras.layers.experimental.SyncBatchNormalization if norm == "sync_batch"
         else tf_keras.layers.BatchNormalization)
  return cls(axis=axis, momentum=momentum, epsilon=epsilon, name=name)


def _check_flag(name, value):
  if not isinstance(value, bool):
    raise ValueError(f"{name} must be True or False, received {name}={value!r}")
  return value


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PositionSensitiveAxialAttention(tf_keras.layers.Layer):
  """Multi-head position-sensitive self-attention along one axis (Axial-DeepLab Eq. 4).

  Args:
    key_depth: total depth of the queries and keys over all heads (and of the query
      and key embeddings).
    value_depth: total depth of the values over all heads: the output channels.
    num_heads: attention heads; must divide key_depth and value_depth.
    axis: "height" (attend within each column) or "width" (within each row).
    max_span: the longest distance the relative embeddings cover plus one: the longest
      axis of global attention (a longer one raises) and the largest span.
    use_query_rpe: the q_o.r^q_{p-o} similarity term.
    use_key_rpe: the k_p.r^k_{p-o} similarity term.
    use_value_rpe: the r^v_{p-o} retrieved term. With the three off the layer is plain
      multi-head content attention.
    query_key_rpe_stddev: initial stddev of r^q and r^k (deeplab2: 1.0).
    value_rpe_stddev: initial stddev of r^v (deeplab2: 1.0).
    norm: "batch", "sync_batch" or None (no batch norm anywhere in the layer).
    norm_momentum, norm_epsilon: batch-norm settings.
    weight_decay: L2 on the projection kernel and the embedding tables (deeplab2).
    strides: keep every `strides`-th output position along the attended axis (the
      first one included); at inference only those queries are computed.
    span: None (global attention over axes up to max_span long) or an odd window
      length m <= max_span: each query attends to m positions centred on it (shifted
      inside the axis at its borders); axes of any length, global when <= m.
  Input: [B, H, W, C]; output: [B, ceil(H / strides), W, value_depth] for "height",
  [B, H, ceil(W / strides), value_depth] for "width".
  """

  def __init__(self, key_depth, value_depth, num_heads=8, axis="height",
               max_span=DEFAULT_MAX_SPAN, use_query_rpe=True, use_key_rpe=True,
               use_value_rpe=True, query_key_rpe_stddev=1.0, value_rpe_stddev=1.0,
               norm="batch", norm_momentum=0.99, norm_epsilon=1e-3, weight_decay=0.0,
               strides=1, span=None, **kwargs):
    super().__init__(**kwargs)
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.key_depth = validation.check_positive("key_depth", key_depth, integer=True)
    self.value_depth = validation.check_positive("value_depth", value_depth, integer=True)
    self.num_heads = validation.check_positive("num_heads", num_heads, integer=True)
    for depth_name, depth in (("key_depth", key_depth), ("value_depth", value_depth)):
      if depth % num_heads:
        raise ValueError(f"num_heads must divide {depth_name}={depth!r}, received "
                         f"num_heads={num_heads!r}")
    self.axis = validation.check_in("axis", axis, AXES)
    self.max_span = validation.check_positive("max_span", max_span, integer=True)
    self.span = check_span(span, max_span)
    self.use_query_rpe = _check_flag("use_query_rpe", use_query_rpe)
    self.use_key_rpe = _check_flag("use_key_rpe", use_key_rpe)
    self.use_value_rpe = _check_flag("use_value_rpe", use_value_rpe)
    self.query_key_rpe_stddev = validation.check_positive("query_key_rpe_stddev",
                                                          query_key_rpe_stddev)
    self.value_rpe_stddev = validation.check_positive("value_rpe_stddev", value_rpe_stddev)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)
    self._key_head_depth = key_depth // num_heads
    self._value_head_depth = value_depth // num_heads

    def _norm(name, axis=-1, enabled=True):
      return _make_norm(norm, norm_momentum, norm_epsilon, axis, name) if enabled else None

    self.qkv_norm = _norm("qkv_norm")
    # The similarity terms are stacked into [terms, B, X, heads, L, L] and normalised
    # with statistics per term and head (deeplab2's norm over axes [0, 2] of its stack);
    # each retrieved term has its own norm, statistics per channel (deeplab2's [0, 2, 4]).
    self._num_terms = 1 + int(use_query_rpe) + int(use_key_rpe)
    self.similarity_norm = _norm("similarity_norm", [0, 3])
    self.content_output_norm = _norm("content_output_norm")
    self.value_rpe_output_norm = _norm("value_rpe_output_norm", -1, use_value_rpe)
    subscripts = _SUBSCRIPTS[self.axis]
    self._query, self._key = subscripts["query"], subscripts["key"]

  def _check_length(self, length):
    if self.span is not None:
      return  # local attention: any length
    if length is not None and length > self.max_span:
      raise ValueError(
          f"{self.name}: the {self.axis} axis has length {length}, longer than the "
          f"relative embeddings cover; use a smaller input or a larger max_span, "
          f"received max_span={self.max_span!r}")

  def build(self, input_shape):
    shape = tf.TensorShape(input_shape)
    if shape.rank != 4:
      raise ValueError(f"{type(self).__name__} needs [batch, height, width, channels] "
                       f"inputs, received input_shape={input_shape!r}")
    channels = shape[-1]
    if channels is None:
      raise ValueError(f"{type(self).__name__} needs a known channel count, received "
                       f"input_shape={tuple(shape.as_list())!r}")
    self._check_length(shape[1] if self.axis == "height" else shape[2])
    regularizer = tf_keras.regularizers.l2(self.weight_decay) if self.weight_decay else None
    projected = 2 * self.key_depth + self.value_depth
    self.qkv_kernel = self.add_weight(
        "qkv_kernel", shape=(channels, projected),
        initializer=tf_keras.initializers.TruncatedNormal(stddev=channels ** -0.5),
        regularizer=regularizer)
    rows = 2 * self.max_span - 1

    def table(name, enabled, depth, stddev):
      # A fresh initializer per table: a shared unseeded instance repeats its values.
      if not enabled:
        return None
      return self.add_weight(
          name, shape=(rows, depth),
          initializer=tf_keras.initializers.TruncatedNormal(stddev=stddev),
          regularizer=regularizer)

    self.query_rpe = table("query_rpe", self.use_query_rpe, self._key_head_depth,
                           self.query_key_rpe_stddev)
    self.key_rpe = table("key_rpe", self.use_key_rpe, self._key_head_depth,
                         self.query_key_rpe_stddev)
    self.value_rpe = table("value_rpe", self.use_value_rpe, self._value_head_depth,
                           self.value_rpe_stddev)
    spatial = shape[:3]
    if self.qkv_norm is not None:
      self.qkv_norm.build(spatial.concatenate([projected]))
      self.similarity_norm.build(
          tf.TensorShape([self._num_terms, None, None, self.num_heads, None, None]))
      for norm in self._output_norms():
        norm.build(spatial.concatenate([self.value_depth]))
    super().build(input_shape)

  def _output_norms(self):
    return [n for n in (self.content_output_norm, self.value_rpe_output_norm)
            if n is not None]

  def _relative(self, table, length, dtype, query_stride=1):
    """[Lq, L, depth] embeddings r_{p-o} for the queries o = 0, s, 2s, .. (s the
    query stride) and every key p, gathered from the table's central 2L - 1 rows.

    Slicing before the gather gives the table a dense gradient (a gather alone gives
    IndexedSlices with L * L rows, larger than the table and slow to all-reduce).
    """
    central = tf.slice(tf.cast(table, dtype), [self.max_span - length, 0],
                       [2 * length - 1, -1])
    if isinstance(length, int):
      indices = relative_position_indices(length, length)[::query_stride]
    else:
      keys = tf.range(length)
      queries = tf.range(0, length, query_stride)
      indices = keys[None, :] - queries[:, None] + (length - 1)
    return tf.gather(central, indices)

  def _central(self, table, span, dtype):
    """The table's 2 span - 1 rows of the distances -(span - 1) .. span - 1."""
    return tf.slice(tf.cast(table, dtype), [self.max_span - span, 0], [2 * span - 1, -1])

  def _heads(self, qkv):
    """Splits projected [.., 2 * key_depth + value_depth] channels into q, k
    [.., heads, dk] and v [.., heads, dv]."""
    query, key, value = tf.split(qkv, [self.key_depth, self.key_depth, self.value_depth],
                                 axis=-1)
    leading = tf.shape(qkv)[:3]

    def heads(t, depth):
      return tf.reshape(t, tf.concat([leading, [self.num_heads, depth]], 0))

    return (heads(query, self._key_head_depth), heads(key, self._key_head_depth),
            heads(value, self._value_head_depth))

  def _split_heads(self, inputs, training):
    """Projects (then batch-normalises) to q, k, v."""
    qkv = tf.einsum("bhwc,cd->bhwd", inputs, tf.cast(self.qkv_kernel, inputs.dtype))
    if self.qkv_norm is not None:
      qkv = self.qkv_norm(qkv, training=training)
    return self._heads(qkv)

  def _merge_heads(self, t):
    return tf.reshape(t, tf.concat([tf.shape(t)[:3], [self.value_depth]], 0))

  def _length(self, inputs):
    axis = 1 if self.axis == "height" else 2
    static = inputs.shape[axis]
    self._check_length(static)
    if static is not None:
      return static
    length = tf.shape(inputs)[axis]
    if self.span is not None:
      return length
    # Unknown at trace time (a None input size): check when the graph runs.
    tf.debugging.assert_less_equal(
        length, self.max_span,
        message=f"{self.name}: the {self.axis} axis is longer than "
                f"max_span={self.max_span}")
    return length

  def _subsample(self, t, stride):
    """Every stride-th position along the attended axis (axis 1 or 2)."""
    if stride == 1:
      return t
    return t[:, ::stride] if self.axis == "height" else t[:, :, ::stride]

  def _positions(self, t, start, stop):
    """Positions start .. stop - 1 along the attended axis (axis 1 or 2)."""
    return t[:, start:stop] if self.axis == "height" else t[:, :, start:stop]

  def _weights(self, logits, dtype):
    """Softmax over key positions, in float32."""
    return tf.cast(tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1), dtype)

  @staticmethod
  def _sum(terms):
    """Sum of the similarity terms as chained additions: LiteRT quantizes ADD to int8
    but has no int8 ADD_N. The float32 result is tf.add_n's (it adds in the same order),
    and AxialResNetS's inference time did not change (1204 against 1200 ms per batch of
    8 at 224, interleaved, oneDNN)."""
    logits = terms[0]
    for term in terms[1:]:
      logits = logits + term
    return logits

  def _similarity_terms(self, query, key, length, scales=None, query_stride=1,
                        local=False):
    """q.k, q.r^q and k.r^k as [B, X, heads, Lq, K] tensors (K = L keys, or the span
    when `local`), for queries subsampled by `query_stride`; `scales` ([terms, heads])
    multiplies each term per head, applied to q or k before the product."""
    if local:
      return self._local_similarity_terms(query, key, length, scales, query_stride)
    return self._dense_terms(
        query, key, scales,
        lambda table: self._relative(table, length, query.dtype, query_stride))

  def _scaled(self, t, scales, index):
    if scales is None:
      return t
    return t * tf.cast(scales[index][:, None], t.dtype)

  def _dense_terms(self, query, key, scales, relative_fn):
    """The terms of every query with every key; relative_fn(table) -> [Lq, L, d]."""
    terms = [tf.einsum(f"{self._query},{self._key}->{_LOGITS}",
                       self._scaled(query, scales, 0), key)]
    shape = tf.shape(terms[0])
    if self.query_rpe is not None:
      # Batched over the query position o: [Lq, BXn, d] x [Lq, L, d]^T -> [Lq, BXn, L].
      relative = relative_fn(self.query_rpe)
      term = tf.matmul(self._position_major(self._scaled(query, scales, len(terms))),
                       relative, transpose_b=True)
      terms.append(tf.reshape(tf.transpose(term, [1, 0, 2]), shape))
    if self.key_rpe is not None:
      # Batched over the key position p: [L, BXn, d] x [L, Lq, d]^T -> [L, BXn, Lq].
      relative = relative_fn(self.key_rpe)
      term = tf.matmul(self._position_major(self._scaled(key, scales, len(terms))),
                       tf.transpose(relative, [1, 0, 2]), transpose_b=True)
      terms.append(tf.reshape(tf.transpose(term, [1, 2, 0]), shape))
    return terms

  def _position_major(self, t):
    """[B, L, X, heads, d] (height) or [B, X, L, heads, d] (width) -> [L, B*X*heads, d]."""
    t = tf.transpose(t, [1, 0, 2, 3, 4] if self.axis == "height" else [2, 0, 1, 3, 4])
    shape = tf.shape(t)
    return tf.reshape(t, [shape[0], -1, shape[4]])

  def _reference(self, inputs, length, training, local=False):
    """Every position, every batch norm run as a layer (statistics of the batch when
    training), then the stride's subsampling: deeplab2's computation."""
    query, key, value = self._split_heads(inputs, training)
    terms = self._similarity_terms(query, key, length, local=local)
    if self.similarity_norm is None:
      logits = self._sum(terms)
    else:
      logits = tf.reduce_sum(self.similarity_norm(tf.stack(terms), training=training),
                             axis=0)

    def norm(layer):
      return None if layer is None else lambda t: layer(t, training=training)

    out = self._retrieve(logits, value, length, 1, norm(self.content_output_norm),
                         norm(self.value_rpe_output_norm), local=local)
    return self._subsample(out, self.strides)

  def _without_norms(self, inputs, length, local=False):
    """norm=None: no statistics, so only the kept queries are computed."""
    query, key, value = self._split_heads(inputs, False)
    query = self._subsample(query, self.strides)
    logits = self._sum(self._similarity_terms(query, key, length,
                                              query_stride=self.strides, local=local))
    return self._retrieve(logits, value, length, self.strides, local=local)

  def _retrieve(self, logits, value, length, query_stride, content_fn=None,
                retrieved_fn=None, local=False):
    """Softmax over key positions (float32), then the content and value-embedding
    retrievals, each passed through its function (a batch norm, or its folded scale)
    before they are summed; queries subsampled by `query_stride`."""
    weights = self._weights(logits, value.dtype)
    if local:
      content, retrieved = self._local_retrievals(weights, value, length, query_stride)
    else:
      content, retrieved = self._dense_retrievals(
          weights, value,
          lambda table: self._relative(table, length, weights.dtype, query_stride))
    if content_fn is not None:
      content = content_fn(content)
    if retrieved is None:
      return content
    if retrieved_fn is not None:
      retrieved = retrieved_fn(retrieved)
    return content + retrieved

  def _dense_retrievals(self, weights, value, relative_fn):
    """Content and value-embedding retrievals ([B, Lq, X, C] or [B, X, Lq, C]; the
    second None without value embeddings) of [B, X, heads, Lq, L] weights over every
    key; relative_fn(table) -> [Lq, L, dv]."""
    shape = tf.shape(weights)  # [B, X, heads, Lq, L]
    height = self.axis == "height"
    # Batched over (B, X, heads): [BXn, Lq, L] x [BXn, L, dv] -> [BXn, Lq, dv].
    value = tf.transpose(value, [0, 2, 3, 1, 4] if height else [0, 1, 3, 2, 4])
    content = tf.matmul(tf.reshape(weights, [-1, shape[3], shape[4]]),
                        tf.reshape(value, [-1, shape[4], self._value_head_depth]))
    content = tf.reshape(content, [shape[0], shape[1], shape[2], shape[3], -1])
    content = self._merge_heads(
        tf.transpose(content, [0, 3, 1, 2, 4] if height else [0, 1, 3, 2, 4]))
    if self.value_rpe is None:
      return content, None
    relative = relative_fn(self.value_rpe)
    # Batched over the query position: [Lq, BXn, L] x [Lq, L, dv] -> [Lq, BXn, dv].
    by_query = tf.transpose(tf.reshape(weights, [-1, shape[3], shape[4]]), [1, 0, 2])
    retrieved = tf.reshape(tf.matmul(by_query, relative),
                           [shape[3], shape[0], shape[1], shape[2], -1])
    retrieved = self._merge_heads(tf.transpose(
        retrieved, [1, 0, 2, 3, 4] if height else [1, 2, 0, 3, 4]))
    return content, retrieved

  # ---- local attention: a span shorter than the axis --------------------------------
  def _head_major(self, t):
    """[B, L, X, heads, d] (height) or [B, X, L, heads, d] (width) -> [B*X*heads, L, d]."""
    t = tf.transpose(t, [0, 2, 3, 1, 4] if self.axis == "height" else [0, 1, 3, 2, 4])
    shape = tf.shape(t)
    return tf.reshape(t, [-1, shape[3], shape[4]])

  def _from_head_major(self, t, like):
    """[B*X*heads, Lq, d] -> [B, Lq, X, heads * d] (height) or [B, X, Lq, heads * d],
    B and X read from `like` ([B, L, X, ..] or [B, X, L, ..])."""
    leading = tf.shape(like)
    other = leading[2] if self.axis == "height" else leading[1]
    shape = tf.shape(t)
    t = tf.reshape(t, [leading[0], other, self.num_heads, shape[1], shape[2]])
    t = tf.transpose(t, [0, 3, 1, 2, 4] if self.axis == "height" else [0, 1, 3, 2, 4])
    return self._merge_heads(t)

  def _border_relative(self, plan, queries):
    """relative_fn of a border part: distances p - o of its queries and window keys."""
    def relative_fn(table):
      central = self._central(table, self.span, table.dtype)
      return tf.gather(central, plan.border_distances(queries))
    return relative_fn

  def _local_similarity_terms(self, query, key, length, scales, query_stride):
    """The terms over each query's window: [B, X, heads, Lq, span] tensors.

    Border queries (all in a window at the start or the end of the axis) go through the
    dense computation against that window's keys; the others (windows centred on them)
    through `_interior_terms`.
    """
    plan = LocalPlan(length, self.span, query_stride)
    parts = []
    if plan.has_left:
      parts.append(self._dense_terms(
          self._positions(query, 0, plan.left_end),
          self._positions(key, 0, self.span), scales,
          self._border_relative(plan, "left")))
    if plan.has_interior:
      parts.append(self._interior_terms(query, key, scales, plan))
    if plan.has_right:
      parts.append(self._dense_terms(
          self._positions(query, plan.right_start, plan.num_queries),
          self._positions(key, length - self.span, length), scales,
          self._border_relative(plan, "right")))
    if len(parts) == 1:
      return parts[0]
    return [tf.concat(list(part), axis=3) for part in zip(*parts)]

  def _interior_terms(self, query, key, scales, plan):
    """Terms of the queries whose window is centred on them (see the module docstring):
    q.k per block of queries against the keys the block's windows cover, then each
    query's span keys by a skew (pad, reshape, slice); q.r^q a dense product with the
    span distances -(span - 1) / 2 .. (span - 1) / 2, shared by every query; k.r^k a
    dense product of every key with them, then skewed to the windows."""
    span, half = self.span, (self.span - 1) // 2
    stride, block, width = plan.query_stride, plan.block, plan.width
    queries = self._positions(query, plan.left_end, plan.right_start)
    # q_o . k_{o - half + a} for a in [0, span).
    blocks = self._head_major(self._scaled(queries, scales, 0))
    rows = tf.shape(blocks)[0]
    blocks = tf.pad(blocks, [[0, 0], [0, plan.pad_queries], [0, 0]])
    blocks = tf.reshape(blocks, [rows, plan.blocks, block, self._key_head_depth])
    keys = self._head_major(key)
    keys_padded = tf.pad(keys, [[0, 0], [0, plan.pad_keys], [0, 0]])
    # [N, blocks, block, d] x [N, blocks, width, d]^T -> [N, blocks, block, width]: block
    # row t's window starts at column stride * t.
    logits = tf.matmul(blocks, tf.gather(keys_padded, plan.block_keys, axis=1),
                       transpose_b=True)
    logits = tf.reshape(logits, [rows, plan.blocks, block * width])
    logits = tf.pad(logits, [[0, 0], [0, 0], [0, block * stride]])
    logits = tf.reshape(logits, [rows, plan.blocks, block, width + stride])[..., :span]
    logits = tf.reshape(logits, [rows, -1, span])[:, :plan.num_interior]
    shape = [tf.shape(query)[0], -1, self.num_heads, plan.num_interior, span]
    terms = [tf.reshape(logits, shape)]
    middle = lambda table, dtype: tf.slice(tf.cast(table, dtype),
                                           [self.max_span - 1 - half, 0], [span, -1])
    if self.query_rpe is not None:
      # q_o . r^q_{a - half}: [N, Li, d] x [span, d]^T.
      term = tf.matmul(self._head_major(self._scaled(queries, scales, len(terms))),
                       middle(self.query_rpe, query.dtype), transpose_b=True)
      terms.append(tf.reshape(term, shape))
    if self.key_rpe is not None:
      # k_p . r^k_{a - half} for every key p: [span, d] x [N, L, d]^T -> [N, span, L].
      # Row a holds the window slot a of the query o at column p = o - half + a, i.e.
      # at offset o - half + a * (L + 1) of the flat row: a skew by one per row.
      keys = self._head_major(self._scaled(key, scales, len(terms)))
      term = tf.matmul(middle(self.key_rpe, key.dtype), keys, transpose_b=True)
      length = tf.shape(keys)[1]
      term = tf.pad(tf.reshape(term, [rows, -1]), [[0, 0], [0, span]])
      term = tf.reshape(term, [rows, span, length + 1])
      first = plan.interior_start - half
      term = term[:, :, first:first + stride * (plan.num_interior - 1) + 1:stride]
      terms.append(tf.reshape(tf.transpose(term, [0, 2, 1]), shape))
    return terms

  def _local_retrievals(self, weights, value, length, query_stride):
    """`_dense_retrievals` for [B, X, heads, Lq, span] window weights."""
    plan = LocalPlan(length, self.span, query_stride)
    contents, retrievals = [], []

    def add(part):
      contents.append(part[0])
      retrievals.append(part[1])

    if plan.has_left:
      add(self._dense_retrievals(weights[:, :, :, :plan.left_end],
                                 self._positions(value, 0, self.span),
                                 self._border_relative(plan, "left")))
    if plan.has_interior:
      add(self._interior_retrievals(
          weights[:, :, :, plan.left_end:plan.right_start], value, plan))
    if plan.has_right:
      add(self._dense_retrievals(weights[:, :, :, plan.right_start:],
                                 self._positions(value, length - self.span, length),
                                 self._border_relative(plan, "right")))
    axis = 1 if self.axis == "height" else 2

    def joined(parts):
      return parts[0] if len(parts) == 1 else tf.concat(parts, axis=axis)

    return joined(contents), None if retrievals[0] is None else joined(retrievals)

  def _interior_retrievals(self, weights, value, plan):
    """Retrievals of the interior queries: the window weights skewed back into each
    block's key columns (the inverse of `_interior_terms`'s skew, zeros outside the
    windows), times the block's values; the value embeddings as one dense product."""
    span, half = self.span, (self.span - 1) // 2
    stride, block, width = plan.query_stride, plan.block, plan.width
    shape = tf.shape(weights)
    rows = shape[0] * shape[1] * shape[2]
    flat = tf.reshape(weights, [rows, -1, span])
    blocks = tf.pad(flat, [[0, 0], [0, plan.pad_queries], [0, 0]])
    blocks = tf.reshape(blocks, [rows, plan.blocks, block, span])
    blocks = tf.pad(blocks, [[0, 0], [0, 0], [0, 0], [0, width + stride - span]])
    blocks = tf.reshape(blocks, [rows, plan.blocks, -1])[:, :, :block * width]
    blocks = tf.reshape(blocks, [rows, plan.blocks, block, width])
    values = tf.pad(self._head_major(value), [[0, 0], [0, plan.pad_keys], [0, 0]])
    # [N, blocks, block, width] x [N, blocks, width, dv] -> [N, blocks, block, dv].
    content = tf.matmul(blocks, tf.gather(values, plan.block_keys, axis=1))
    content = tf.reshape(content, [rows, -1, self._value_head_depth])
    content = self._from_head_major(content[:, :plan.num_interior], value)
    if self.value_rpe is None:
      return content, None
    table = tf.slice(tf.cast(self.value_rpe, weights.dtype),
                     [self.max_span - 1 - half, 0], [span, -1])
    retrieved = self._from_head_major(tf.matmul(flat, table), value)
    return content, retrieved

  @staticmethod
  def _affine(norm):
    """(scale, offset) in float32 of a batch norm at inference: x * scale + offset."""
    scale = tf.math.rsqrt(tf.cast(norm.moving_variance, tf.float32) + norm.epsilon)
    if norm.scale:
      scale = scale * tf.cast(norm.gamma, tf.float32)
    offset = -tf.cast(norm.moving_mean, tf.float32) * scale
    if norm.center:
      offset = offset + tf.cast(norm.beta, tf.float32)
    return scale, offset

  def _folded(self, inputs, length, local=False):
    """Inference with every batch norm folded (see the module docstring)."""
    scale, offset = self._affine(self.qkv_norm)
    qk_channels = 2 * self.key_depth
    content_scale, content_offset = self._affine(self.content_output_norm)
    value_offset = offset[qk_channels:] * content_scale + content_offset
    scale_retrieved = None
    if self.value_rpe_output_norm is not None:
      value_rpe_scale, value_rpe_offset = self._affine(self.value_rpe_output_norm)
      # The weights sum to one, so an offset on v is an offset on the output.
      value_offset = value_offset + value_rpe_offset

      def scale_retrieved(t):
        return t * tf.cast(value_rpe_scale, t.dtype)

    scale = tf.concat([scale[:qk_channels], scale[qk_channels:] * content_scale], 0)
    offset = tf.concat([offset[:qk_channels], value_offset], 0)
    kernel = tf.cast(tf.cast(self.qkv_kernel, tf.float32) * scale, inputs.dtype)
    qkv = tf.einsum("bhwc,cd->bhwd", inputs, kernel) + tf.cast(offset, inputs.dtype)
    query, key, value = self._heads(qkv)
    query = self._subsample(query, self.strides)
    # Keras keeps multi-axis norm parameters broadcastable: [terms, 1, 1, heads, 1, 1].
    similarity_scale, _ = self._affine(self.similarity_norm)
    similarity_scale = tf.reshape(similarity_scale, [self._num_terms, self.num_heads])
    logits = self._sum(self._similarity_terms(query, key, length, similarity_scale,
                                              self.strides, local=local))
    return self._retrieve(logits, value, length, self.strides,
                          retrieved_fn=scale_retrieved, local=local)

  def _attend(self, inputs, length, training, local):
    if self.qkv_norm is None:
      return self._without_norms(inputs, length, local)
    if isinstance(training, bool) or training is None:
      if training:
        return self._reference(inputs, length, True, local)
      return self._folded(inputs, length, local)
    return tf.__internal__.smart_cond.smart_cond(
        training, lambda: self._reference(inputs, length, True, local),
        lambda: self._folded(inputs, length, local))

  # Plain Python control flow on static values only: skipping autograph's conversion
  # makes building a model of many axial layers several times faster.
  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    length = self._length(inputs)
    if self.span is None or (isinstance(length, int) and length <= self.span):
      return self._attend(inputs, length, training, local=False)
    if isinstance(length, int):
      return self._attend(inputs, length, training, local=True)
    if _inferring_output_shapes():
      # Both branches give the same shapes; tracing one keeps model building fast.
      return self._attend(inputs, length, training, local=False)
    # An unknown length: global while the span covers it, local beyond.
    return tf.cond(length > self.span,
                   lambda: self._attend(inputs, length, training, local=True),
                   lambda: self._attend(inputs, length, training, local=False))

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape)
    dims = shape.as_list()[:-1]
    axis = 1 if self.axis == "height" else 2
    if dims[axis] is not None:
      dims[axis] = -(-dims[axis] // self.strides)
    return tf.TensorShape(dims + [self.value_depth])

  def get_config(self):
    config = super().get_config()
    config.update(
        key_depth=self.key_depth, value_depth=self.value_depth, num_heads=self.num_heads,
        axis=self.axis, max_span=self.max_span, use_query_rpe=self.use_query_rpe,
        use_key_rpe=self.use_key_rpe, use_value_rpe=self.use_value_rpe,
        query_key_rpe_stddev=self.query_key_rpe_stddev,
        value_rpe_stddev=self.value_rpe_stddev, norm=self.norm,
        norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
        weight_decay=self.weight_decay, strides=self.strides, span=self.span)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class AxialAttention2D(tf_keras.layers.Layer):
  """Height-axis then width-axis position-sensitive attention, with optional stride.

  As deeplab2's `AxialAttention2D` and the paper (Sec. 3, "Axial-ResNet"): the width
  pass takes the height pass's output directly (no 1x1 conv in between), and a stride
  subsamples each axis right after its attention pass.

  Args:
    filters: base channels; key depth = round(filters * key_expansion) and value depth
      (the output channels) = round(filters * value_expansion).
    strides: 1 or 2, applied by subsampling after each pass.
    key_expansion, value_expansion: deeplab2 defaults 1 and 2.
    num_heads, max_span, use_query_rpe, use_key_rpe, use_value_rpe,
    query_key_rpe_stddev, value_rpe_stddev, norm, norm_momentum, norm_epsilon,
    weight_decay, span: as PositionSensitiveAxialAttention, for both passes.
  Input: [B, H, W, C]; output: [B, ceil(H / s), ceil(W / s), value depth].
  """

  def __init__(self, filters, strides=1, key_expansion=1.0, value_expansion=2.0,
               num_heads=8, max_span=DEFAULT_MAX_SPAN, use_query_rpe=True,
               use_key_rpe=True, use_value_rpe=True, query_key_rpe_stddev=1.0,
               value_rpe_stddev=1.0, norm="batch", norm_momentum=0.99,
               norm_epsilon=1e-3, weight_decay=0.0, span=None, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.strides = validation.check_positive("strides", strides, integer=True)
    self.key_expansion = validation.check_positive("key_expansion", key_expansion)
    self.value_expansion = validation.check_positive("value_expansion", value_expansion)
    self.key_depth = int(round(filters * key_expansion))
    self.value_depth = int(round(filters * value_expansion))
    self._attention_args = dict(
        num_heads=num_heads, max_span=max_span, use_query_rpe=use_query_rpe,
        use_key_rpe=use_key_rpe, use_value_rpe=use_value_rpe,
        query_key_rpe_stddev=query_key_rpe_stddev, value_rpe_stddev=value_rpe_stddev,
        norm=norm, norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
        weight_decay=weight_decay, span=span)
    # Each pass subsamples its own axis; at inference it computes only the kept rows
    # (height) or columns (width).
    self.height_attention = PositionSensitiveAxialAttention(
        self.key_depth, self.value_depth, axis="height", name="height_axis",
        strides=strides, **self._attention_args)
    self.width_attention = PositionSensitiveAxialAttention(
        self.key_depth, self.value_depth, axis="width", name="width_axis",
        strides=strides, **self._attention_args)

  def build(self, input_shape):
    shape = tf.TensorShape(input_shape)
    if shape.rank != 4:
      raise ValueError(f"AxialAttention2D needs [batch, height, width, channels] inputs, "
                       f"received input_shape={input_shape!r}")
    self.height_attention.build(shape)
    height = shape[1]
    if height is not None and self.strides > 1:
      height = -(-height // self.strides)
    self.width_attention.build(
        tf.TensorShape([shape[0], height, shape[2], self.value_depth]))
    super().build(input_shape)

  # Plain Python control flow on static values only: skipping autograph's conversion
  # makes building a model of many axial layers several times faster.
  @tf.autograph.experimental.do_not_convert
  def call(self, inputs, training=None):
    x = self.height_attention(inputs, training=training)
    return self.width_attention(x, training=training)

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape)
    dims = [shape[0]]
    for dim in shape[1:3]:
      dims.append(None if dim is None else -(-dim // self.strides))
    return tf.TensorShape(dims + [self.value_depth])

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, strides=self.strides,
                  key_expansion=self.key_expansion, value_expansion=self.value_expansion,
                  **self._attention_args)
    return config
