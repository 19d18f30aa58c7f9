"""Global multi-head self-attention over a 2D map with split relative position logits.

The MHSA layer of BoTNet (botnet.md Fig. 4, Sec. 3), following the authors' released
TensorFlow code (gist `aravindsrinivas/56359b79f0ce4449bcb04ab4b56a57a2`, functions
`relpos_self_attention`, `relative_logits`, `relative_logits_1d`, `rel_to_abs`) for
everything the paper leaves open:

- q, k, v are 1x1 projections without bias (`group_pointwise`), initialised with a
  normal of stddev 0.01, and there is no output projection (botnet.md Sec. 2, the third
  difference from a Transformer block).
- Logits are `q k^T + q r^T` where `r` comes from two tables, R_h of shape (2H - 1, d)
  and R_w of shape (2W - 1, d), shared by all heads; a query at (x, y) and a key at
  (p, q) get `q . R_h[p - x + H - 1] + q . R_w[q - y + W - 1]`.
- q is scaled by d^-0.5 *before* both terms (`q = q * dim ** -0.5` precedes the
  content and the relative logits in `relpos_self_attention`).
- Tables are initialised with a normal of stddev d^-0.5 (the gist passes d^-0.5 as the
  *mean* by mistake and says so in a comment; we use the intended stddev).

Computation follows the gist: q is contracted with each axis' (2L - 1)-row table and
`rel_to_abs` (pads and reshapes) moves the offsets to key positions, so the counted
multiply-adds are the authors' (`2 (2L - 1) C L^2` per layer in their script). We tried
gathering R[k - q + L - 1] first (half the multiply-adds of that term), but its gradient
is an IndexedSlices: tracing a MirroredStrategy training step of a tiny BoTNet-50 took
81 s against 66 s with `rel_to_abs` (same busy 2-core machine).
Every step (einsum, pad, reshape, slice) runs under XLA and converts to TFLite;
tensors stay at rank <= 5.

Variable size. The tables are sized for a maximum map `max_size` (2M - 1 rows per
axis). A smaller H x W map uses rows M - H .. M + H - 2, the central 2H - 1 rows, which
are exactly the offsets -(H - 1) .. H - 1 (row k - q + M - 1 of the big table). Maps
larger than `max_size` raise a ValueError when the shape is static, and fail a
`tf.debugging` assertion naming `max_size` when it is dynamic.

Ablations of botnet.md Table 4: `content_logits=False` (position only, q r^T),
`position_encoding=None` (content only, q k^T) and `position_encoding="absolute"`
(q k^T + q r_abs^T, the gist's commented-out `absolute_logits`: per-axis tables of H
and W rows summed into an (H, W, d) grid; a smaller map uses the central crop).
"""
import tensorflow as tf
import tf_keras

from tfvision.utils import validation

POSITION_ENCODINGS = ("relative", "absolute", None)


def _pair(value, name):
  """None, an int or an (h, w) pair of positive ints -> None or a tuple."""
  if value is None:
    return None
  if isinstance(value, (tuple, list)):
    if len(value) != 2:
      raise ValueError(f"{name} must be an int or a (height, width) pair, received "
                       f"{name}={value!r}")
    pair = tuple(value)
  else:
    pair = (value, value)
  for v in pair:
    validation.check_positive(name, v, integer=True)
  return pair


def _static_or_dynamic(tensor, axis):
  size = tensor.shape[axis]
  return size if size is not None else tf.shape(tensor)[axis]


def rel_to_abs(logits):
  """Relative to absolute indexing along one axis (the gist's `rel_to_abs`).

  Args:
    logits: [N, L, 2L - 1], column m holding the logit of offset m - (L - 1).
  Returns:
    [N, L, L] with out[:, i, j] = logits[:, i, j - i + L - 1]: one zero column makes
    rows 2L long, flattening and L - 1 more zeros shift each row by one against the
    previous, and the reshape to rows of 2L - 1 lines the offsets up by key.
  """
  length = _static_or_dynamic(logits, 1)
  batch = tf.shape(logits)[0]
  padded = tf.pad(logits, [[0, 0], [0, 0], [0, 1]])
  flat = tf.reshape(padded, [batch, -1])
  flat = tf.pad(flat, [[0, 0], [0, length - 1]])
  shifted = tf.reshape(flat, [batch, length + 1, 2 * length - 1])
  return shifted[:, :length, length - 1:]


def relative_logits_2d(query, table_h, table_w, max_size):
  """Split relative position logits q . R_h[p - x] + q . R_w[q - y] (botnet.md Fig. 4).

  As the gist's `relative_logits`: q is contracted with the (2L - 1)-row table of each
  axis and `rel_to_abs` moves the offsets to key positions; a map smaller than
  `max_size` uses the central 2L - 1 rows of the table (offsets -(L - 1) .. L - 1).

  Args:
    query: [B, heads, H, W, d] (already scaled by d^-0.5).
    table_h: [2 * max_size[0] - 1, d]; table_w: [2 * max_size[1] - 1, d].
    max_size: (max_h, max_w) the tables were sized for; H <= max_h, W <= max_w.
  Returns:
    [B, heads, H * W, H * W] logits, queries along axis 2 and keys along axis 3, both
    flattened row-major as (x, y) -> x * W + y.
  """
  heads = query.shape[1]
  height, width = _static_or_dynamic(query, 2), _static_or_dynamic(query, 3)
  rows_h = table_h[max_size[0] - height:max_size[0] + height - 1]
  rows_w = table_w[max_size[1] - width:max_size[1] + width - 1]
  length = height * width
  # Width: rows (b, n, x) of queries over y; keys q.
  logits_w = tf.einsum("bnxyd,md->bnxym", query, rows_w)
  logits_w = rel_to_abs(tf.reshape(logits_w, [-1, width, 2 * width - 1]))
  logits_w = tf.reshape(logits_w, [-1, length, 1, width])
  # Height: the same with the axes swapped, then back to (x, y) query order.
  logits_h = tf.einsum("bnxyd,md->bnyxm", query, rows_h)
  logits_h = rel_to_abs(tf.reshape(logits_h, [-1, height, 2 * height - 1]))
  logits_h = tf.reshape(logits_h, [-1, heads, width, height, height])
  logits_h = tf.reshape(tf.transpose(logits_h, [0, 1, 3, 2, 4]), [-1, length, height, 1])
  # Broadcast the two axes against each other at rank 4 (TFLite-friendly).
  return tf.reshape(logits_h + logits_w, [-1, heads, length, length])


@tf_keras.utils.register_keras_serializable(package="tfvision")
class RelativeMultiHeadSelfAttention2D(tf_keras.layers.Layer):
  """All-to-all multi-head self-attention on a 2D map with split relative positions.

  Args:
    num_heads: number of heads (botnet.md Fig. 4: 4).
    filters: width of q, k, v and of the output; None keeps the input width (BoTNet).
      Must be divisible by `num_heads`.
    max_size: None (size the position tables for the map seen at build time, which
      must then be static), an int, or (max_height, max_width): the largest map the
      layer accepts; smaller maps use the central part of the tables.
    position_encoding: "relative" (default), "absolute" or None (content only);
      botnet.md Table 4.
    content_logits: include q k^T (False with "relative" is Table 4's position-only
      "q r^T" row).
    kernel_initializer: initializer of the fused q/k/v kernel; None is the gist's
      normal with stddev 0.01.
    weight_decay: L2 weight decay on the q/k/v kernel.
  Input: [B, H, W, C]; output: [B, H, W, filters or C].
  """

  def __init__(self, num_heads=4, filters=None, max_size=None, position_encoding="relative",
               content_logits=True, kernel_initializer=None, weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = validation.check_positive("num_heads", num_heads, integer=True)
    if filters is not None:
      validation.check_positive("filters", filters, integer=True)
      if filters % num_heads:
        raise ValueError(f"num_heads must divide filters={filters!r}, received "
                         f"num_heads={num_heads!r}")
    self.filters = filters
    self.max_size = _pair(max_size, "max_size")
    self.position_encoding = validation.check_in("position_encoding", position_encoding,
                                                 POSITION_ENCODINGS)
    self.content_logits = bool(content_logits)
    if not self.content_logits and position_encoding is None:
      raise ValueError("attention needs content or position logits, received "
                       "content_logits=False with position_encoding=None")
    self.kernel_initializer = (tf_keras.initializers.RandomNormal(stddev=0.01)
                               if kernel_initializer is None
                               else tf_keras.initializers.get(kernel_initializer))
    self.weight_decay = validation.check_non_negative("weight_decay", weight_decay)

  def build(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    if input_shape.rank != 4 or input_shape[-1] is None:
      raise ValueError(f"RelativeMultiHeadSelfAttention2D needs [B, H, W, C] inputs with a "
                       f"known C, received input_shape={tuple(input_shape)!r}")
    channels = int(input_shape[-1])
    filters = self.filters or channels
    if filters % self.num_heads:
      raise ValueError(f"num_heads must divide the attention width {filters}, received "
                       f"num_heads={self.num_heads!r}")
    self._width = filters
    self._head_dim = filters // self.num_heads
    if self.max_size is None:
      height, width = input_shape[1], input_shape[2]
      if height is None or width is None:
        raise ValueError(f"max_size is required when the map size is not static, received "
                         f"max_size=None for input_shape={tuple(input_shape)!r}")
      self._table_size = (int(height), int(width))
    else:
      self._table_size = self.max_size
      self._check_size(input_shape[1], input_shape[2])
    self.qkv_kernel = self.add_weight(
        "qkv_kernel", shape=(channels, 3 * filters), initializer=self.kernel_initializer,
        regularizer=(tf_keras.regularizers.l2(self.weight_decay)
                     if self.weight_decay else None))
    if self.position_encoding is not None:
      # The gist's intended initialiser: normal with stddev d^-0.5. One instance per
      # table: an unseeded tf_keras initializer repeats its values when reused.
      rows = ((2 * self._table_size[0] - 1, 2 * self._table_size[1] - 1)
              if self.position_encoding == "relative" else self._table_size)
      self.position_height = self.add_weight(
          "position_height", shape=(rows[0], self._head_dim),
          initializer=tf_keras.initializers.RandomNormal(stddev=self._head_dim ** -0.5))
      self.position_width = self.add_weight(
          "position_width", shape=(rows[1], self._head_dim),
          initializer=tf_keras.initializers.RandomNormal(stddev=self._head_dim ** -0.5))
    super().build(input_shape)

  def _check_size(self, height, width):
    """Static map sizes must fit the tables (dynamic ones are asserted in call)."""
    for axis, size, limit in (("height", height, self._table_size[0]),
                              ("width", width, self._table_size[1])):
      if size is not None and int(size) > limit:
        raise ValueError(
            f"{self.name}: feature map {axis} {int(size)} exceeds the maximum feature size "
            f"the position tables cover, received max_size={self._table_size!r}")

  def _assert_size(self, height, width):
    """Assertions for maps whose size is only known at run time."""
    ops = []
    for axis, size, limit in (("height", height, self._table_size[0]),
                              ("width", width, self._table_size[1])):
      if not isinstance(size, int):
        ops.append(tf.debugging.assert_less_equal(
            size, limit, message=(f"{self.name}: feature map {axis} exceeds the maximum "
                                  f"feature size of the position tables, "
                                  f"max_size={self._table_size!r}")))
    return ops

  def _absolute_embeddings(self, height, width):
    """[H * W, d] absolute embeddings R_h[x] + R_w[y], central crop of the tables."""
    top = (self._table_size[0] - height) // 2
    left = (self._table_size[1] - width) // 2
    emb_h = self.position_height[top:top + height]
    emb_w = self.position_width[left:left + width]
    return tf.reshape(emb_h[:, None, :] + emb_w[None, :, :], [-1, self._head_dim])

  def attention_logits(self, query, key, height, width):
    """Pre-softmax logits from scaled queries and keys.

    Args:
      query: [B, heads, H * W, d], already multiplied by d^-0.5.
      key: [B, heads, H * W, d].
      height, width: the map's H and W (ints or scalar tensors).
    Returns:
      [B, heads, H * W (queries), H * W (keys)].
    """
    logits = None
    if self.content_logits:
      logits = tf.matmul(query, key, transpose_b=True)
    if self.position_encoding == "relative":
      grid = tf.reshape(query, [-1, self.num_heads, height, width, self._head_dim])
      position = relative_logits_2d(grid, self.position_height, self.position_width,
                                    self._table_size)
      logits = position if logits is None else logits + position
    elif self.position_encoding == "absolute":
      emb = self._absolute_embeddings(height, width)
      position = tf.einsum("bnld,md->bnlm", query, emb)
      logits = position if logits is None else logits + position
    return logits

  def call(self, inputs):
    static = inputs.shape
    dynamic = tf.shape(inputs)
    height = static[1] if static[1] is not None else dynamic[1]
    width = static[2] if static[2] is not None else dynamic[2]
    self._check_size(static[1], static[2])
    checks = self._assert_size(height, width)
    with tf.control_dependencies(checks):
      flat = tf.reshape(inputs, [-1, static[-1]])
    length = height * width
    kernel = tf.cast(self.qkv_kernel, inputs.dtype)
    qkv = tf.reshape(tf.matmul(flat, kernel),
                     [-1, length, 3, self.num_heads, self._head_dim])
    qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])  # [3, B, heads, H * W, d]
    query, key, value = qkv[0], qkv[1], qkv[2]
    query = query * tf.cast(self._head_dim ** -0.5, query.dtype)
    logits = self.attention_logits(query, key, height, width)
    # Softmax in float32 under mixed precision.
    weights = tf.cast(tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1), value.dtype)
    out = tf.matmul(weights, value)                       # [B, heads, H * W, d]
    out = tf.transpose(out, [0, 2, 1, 3])
    return tf.reshape(out, [-1, height, width, self._width])

  def compute_output_shape(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    return input_shape[:-1].concatenate([self.filters or input_shape[-1]])

  def get_config(self):
    config = super().get_config()
    config.update(
        num_heads=self.num_heads, filters=self.filters,
        max_size=None if self.max_size is None else list(self.max_size),
        position_encoding=self.position_encoding, content_logits=self.content_logits,
        kernel_initializer=tf_keras.initializers.serialize(self.kernel_initializer),
        weight_decay=self.weight_decay)
    return config
