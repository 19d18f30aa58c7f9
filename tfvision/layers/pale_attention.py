"""Pale-shaped self-attention (Wu et al., AAAI 2022; pale-transformer.md) and its ablations.

A pale (Sec. "Pale-Shaped self-Attention") is s_r interlaced rows plus s_c interlaced
columns of the feature map: with N_r = h / s_r, row group g holds rows g, g + N_r,
g + 2 N_r, ... (equal intervals between adjacent rows, Fig. 1(e)); columns likewise.
Every grouping here is a reshape/transpose of the padded map, never a gather.

Modes (Table 8):
  "parallel" (the paper's, Eq. 1-3): channels split in half; the first half attends
    within row groups, the second within column groups; the halves are concatenated
    (Eq. 3: Concat(Y_r, Y_c)). Each branch gets half the heads (head dim C / H). The
    paper does not say how heads are split; CSWin (`cswin.py`: `LePEAttention(dim // 2,
    num_heads=num_heads // 2)`), whose two-branch layout and head numbers [2, 4, 8, 16]
    Pale-T shares, decided it. A consequence: when one group covers the whole map (stage
    4 at 224: 7x7 with pale size 7) the two branches together are exactly global
    attention with H heads, as CSWin's `last_stage` branch.
  "sequential": full channels and heads, row groups or column groups only
    (`sequential_direction`); the model alternates the two in consecutive blocks.
  "vanilla": attention within whole pales. The paper's definition (Sec. "Pale-Shaped
    self-Attention") splits the (padded) map into N = h / s_r = w / s_c pales, pale k
    being rows k, k + N, ... and columns k, k + N, ...; each pale holds
    L = s_r w + s_c h - s_r s_c tokens and attention runs inside each pale. The pales
    overlap: a token at (i, j) with i mod N != j mod N lies in pale (i mod N) through its
    row and in pale (j mod N) through its column; its output is the mean of its outputs
    in the two pales (the paper is silent on this; the mean keeps the scale of the other
    tokens, which lie in one pale). This is the reading whose cost reproduces Table 8:
    vanilla minus parallel attention MACs, 2 N L^2 c - hwc(s_r w + s_c h) summed over
    Pale-T, is 1.15G at 224 (paper: 5.4G - 4.2G), 1685G at 512x2048 (2677G - 996G =
    1681G) and 365G at 800x1280 (668G - 306G = 362G); BENCHMARKS.md. Padding makes
    h / s_r = w / s_c, hence the paper's remark about excessive padding on non-square
    inputs.
  "axial" (Wang et al. 2020): one row / one column per group, i.e. "parallel" with
    pale size 1 (Table 7's "1 1 1 1" row equals Table 8's "Axial" row); `pale_size` is
    not used.
  "cross_shaped" (CSWin, Dong et al. 2021): "parallel" with stripes of s_r *contiguous*
    rows and s_c contiguous columns instead of interlaced ones.

Padding (Sec. "Pale-Shaped self-Attention" and "Efficient Parallel Implementation"): when
h is not divisible by s_r (or w by s_c) the queries, keys and values are zero-padded at
the bottom (right) to the next multiple, the padded keys are masked out of the softmax
(their weight is exactly 0) and the output is cropped back. The mask is applied by
renormalising the softmax over the valid keys, not by adding a large negative logit:
in a full-integer int8 model an additive -1e9 sets the logits' quantization range, so
every real logit rounds to the same value and the attention becomes uniform (Pale-T's
int8 top-1 agreement was 80% for this reason). The padded keys' logits are first set
to their row's minimum, so the valid keys' weights cannot underflow before the
renormalisation; in float the result equals the masked softmax to rounding. The parallel mode pads rows only in the row branch and columns
only in the column branch ("only needs to ensure h can be divisible by s_r and w by
s_c"); vanilla pads both to N s_r x N s_c. We pad after the q/k/v projections: at
inference this equals padding the input (the projections' 3x3 depthwise convs already
pad with zeros), it keeps padded tokens out of the projections' BatchNorm statistics in
training, and it costs no projection MACs on padded tokens.

The softmax runs in float32 under mixed precision.
"""
import tensorflow as tf
import tf_keras

from tfvision.layers.conv import make_norm
from tfvision.utils import validation

MODES = ("parallel", "sequential", "vanilla", "axial", "cross_shaped")
DIRECTIONS = ("row", "column")
# Modes whose channels (and heads) are split between a row and a column branch.
_TWO_BRANCH_MODES = ("parallel", "axial", "cross_shaped")

# The tensor functions below branch in Python on static values only, so they are marked
# `do_not_convert`: autograph has nothing to convert, and converting them was most of a
# model's build time.


def _dims(x):
  """Shape of `x` as a list: Python ints where static, scalar tensors elsewhere.

  An unknown batch size is returned as -1: every caller only reshapes with it, and
  leaving tf.shape out of the usual case (static spatial sizes) saves graph ops.
  """
  static = x.shape.as_list()
  if static[0] is None:
    static[0] = -1
  if None not in static:
    return static
  dynamic = tf.shape(x)
  return [dim if dim is not None else dynamic[i] for i, dim in enumerate(static)]


def _batch(x):
  """The batch size as a Python int or a scalar tensor (never -1: for zero-size reshapes)."""
  batch = x.shape[0]
  return batch if batch is not None else tf.shape(x)[0]


def _is_static(*values):
  return all(isinstance(v, int) for v in values)


def _pad_end(x, axis, target):
  """Zero-pads `x` at the end of `axis` up to length `target`."""
  size = _dims(x)[axis]
  if _is_static(size, target) and size == target:
    return x
  paddings = [[0, 0] for _ in range(len(x.shape))]
  paddings[axis] = [0, target - size]
  return tf.pad(x, paddings)


def check_pale_size(pale_size, name="pale_size"):
  """Returns (s_r, s_c) from an int or a pair of positive ints; ValueError otherwise."""
  if isinstance(pale_size, (list, tuple)):
    values = tuple(pale_size)
    if len(values) != 2:
      raise ValueError(f"{name} must be a positive integer or a pair (rows, columns) of "
                       f"them, received {name}={pale_size!r}")
  else:
    values = (pale_size, pale_size)
  for value in values:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive integer or a pair (rows, columns) of "
                       f"them, received {name}={pale_size!r}")
  return values


def check_heads(channels, num_heads, mode):
  """Validates `num_heads` against `channels` for `mode` (see the module docstring)."""
  validation.check_positive("channels", channels, integer=True)
  validation.check_positive("num_heads", num_heads, integer=True)
  validation.check_in("mode", mode, MODES)
  if mode in _TWO_BRANCH_MODES:
    if channels % 2:
      raise ValueError(f"channels must be even in mode={mode!r} (half for the row branch, "
                       f"half for the column branch), received channels={channels!r}")
    if num_heads % 2 or (channels // 2) % (num_heads // 2):
      raise ValueError(
          f"num_heads must be even and num_heads / 2 must divide channels / 2 = "
          f"{channels // 2} in mode={mode!r} (each branch gets half the heads and half the "
          f"channels, as CSWin), received num_heads={num_heads!r}")
  elif channels % num_heads:
    raise ValueError(f"num_heads must divide channels={channels!r} in mode={mode!r}, "
                     f"received num_heads={num_heads!r}")


@tf.autograph.experimental.do_not_convert
def group_tokens(x, size, axis=1, interlaced=True, num_heads=1):
  """[B, H, W, C] -> [B, N, heads, L, C / heads]: each row (or column) group's tokens.

  Row groups (axis 1, H = N * size): group g holds rows g, g + N, g + 2N, ... when
  `interlaced` (pale, Eq. 1), rows g * size ... g * size + size - 1 otherwise (CSWin
  stripes); L = size * W. Column groups (axis 2) likewise, L = H * size. The heads are
  split off in the same transpose: one copy of the map in all, the layout the attention
  matmuls want.

  Args:
    x: [B, H, W, C], the grouped axis divisible by `size`.
    size: rows (columns) per group, s_r (s_c).
    axis: 1 (rows) or 2 (columns).
    interlaced: interlaced groups or contiguous stripes.
    num_heads: heads to split the channels into.
  """
  batch, height, width, channels = _dims(x)
  head_dim = channels // num_heads
  if axis == 1:
    groups, length = height // size, size * width
    if interlaced:  # row i = r * N + g
      x = tf.reshape(x, [batch, size, groups, width, num_heads, head_dim])
      perm = [0, 2, 4, 1, 3, 5]
    else:  # row i = g * size + r
      x = tf.reshape(x, [batch, groups, size, width, num_heads, head_dim])
      perm = [0, 1, 4, 2, 3, 5]
  else:
    groups, length = width // size, height * size
    if interlaced:  # column j = r * N + g
      x = tf.reshape(x, [batch, height, size, groups, num_heads, head_dim])
      perm = [0, 3, 4, 1, 2, 5]
    else:  # column j = g * size + r
      x = tf.reshape(x, [batch, height, groups, size, num_heads, head_dim])
      perm = [0, 2, 4, 1, 3, 5]
  return tf.reshape(tf.transpose(x, perm), [batch, groups, num_heads, length, head_dim])


@tf.autograph.experimental.do_not_convert
def ungroup_tokens(x, size, other, axis=1, interlaced=True):
  """Inverse of `group_tokens`: [B, N, heads, L, d] -> [B, H, W, heads * d].

  Args:
    x: [B, N, heads, L, d] group outputs.
    size: rows (columns) per group.
    other: the size of the axis that was not grouped (W for rows, H for columns).
    axis: 1 (rows) or 2 (columns).
    interlaced: as given to `group_tokens`.
  """
  batch, groups, num_heads, _, head_dim = _dims(x)
  channels = num_heads * head_dim
  if axis == 1:
    x = tf.reshape(x, [batch, groups, num_heads, size, other, head_dim])
    perm = [0, 3, 1, 4, 2, 5] if interlaced else [0, 1, 3, 4, 2, 5]
    shape = [batch, groups * size, other, channels]
  else:
    x = tf.reshape(x, [batch, groups, num_heads, other, size, head_dim])
    perm = [0, 3, 4, 1, 2, 5] if interlaced else [0, 3, 1, 4, 2, 5]
    shape = [batch, other, groups * size, channels]
  return tf.reshape(tf.transpose(x, perm), shape)


@tf.autograph.experimental.do_not_convert
def split_heads(x, num_heads):
  """[B, G, L, C] -> [B, G, heads, L, C / heads]."""
  batch, groups, length, channels = _dims(x)
  x = tf.reshape(x, [batch, groups, length, num_heads, channels // num_heads])
  return tf.transpose(x, [0, 1, 3, 2, 4])


@tf.autograph.experimental.do_not_convert
def merge_heads(x):
  """Inverse of `split_heads`: [B, G, heads, L, d] -> [B, G, L, heads * d]."""
  batch, groups, num_heads, length, head_dim = _dims(x)
  return tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4]),
                    [batch, groups, length, num_heads * head_dim])


@tf.autograph.experimental.do_not_convert
def _drop_diagonal(x, n, rest):
  """[B, n, n, *rest] -> [B, n, n - 1, *rest]: entry (k, m) for every m != k.

  Flatten (k, m), drop the first entry, view as (n - 1, n + 1) and drop the last
  column: what remains is the off-diagonal entries, row by row (slices and reshapes
  only, so XLA and TFLite handle it).
  """
  batch = _batch(x)
  x = tf.reshape(x, [batch, n * n] + rest)[:, 1:]
  x = tf.reshape(x, [batch, n - 1, n + 1] + rest)[:, :, :n]
  return tf.reshape(x, [batch, n, n - 1] + rest)


@tf.autograph.experimental.do_not_convert
def _insert_diagonal(x, n, rest):
  """Inverse of `_drop_diagonal`, with zeros on the diagonal."""
  batch = _batch(x)
  tail = [[0, 0]] * len(rest)
  x = tf.reshape(x, [batch, n - 1, n] + rest)
  x = tf.pad(x, [[0, 0], [0, 0], [0, 1]] + tail)
  x = tf.reshape(x, [batch, (n - 1) * (n + 1)] + rest)
  x = tf.pad(x, [[0, 0], [1, 0]] + tail)
  return tf.reshape(x, [batch, n, n] + rest)


@tf.autograph.experimental.do_not_convert
def pale_tokens(x, rows, cols, n):
  """[B, N s_r, N s_c, C] -> [B, N, L, C]: the L = (2N - 1) s_r s_c tokens of each pale.

  Pale k holds rows k, k + N, ... (all columns) and columns k, k + N, ... (the rows not
  already taken), i.e. s_r w + s_c h - s_r s_c distinct tokens.
  """
  channels = x.shape[-1]
  batch = _batch(x)
  # Row i = r * N + a, column j = c * N + b.
  x6 = tf.reshape(x, [batch, rows, n, cols, n, channels])
  row_part = tf.transpose(x6, [0, 2, 1, 3, 4, 5])  # [B, a, r, c, b, C]
  row_part = tf.reshape(row_part, [batch, n, rows * cols * n, channels])
  if _is_static(n) and n == 1:
    return row_part
  col_part = tf.transpose(x6, [0, 4, 2, 1, 3, 5])  # [B, b, a, r, c, C]
  # Rank 4 around the slices and pads: TFLite's kernels stop at rank 5.
  col_part = tf.reshape(col_part, [batch, n, n, rows * cols * channels])
  col_part = _drop_diagonal(col_part, n, [rows * cols * channels])  # rows a != b
  col_part = tf.reshape(col_part, [batch, n, (n - 1) * rows * cols, channels])
  return tf.concat([row_part, col_part], axis=2)


@tf.autograph.experimental.do_not_convert
def pale_untokens(x, rows, cols, n):
  """Inverse of `pale_tokens` for outputs: each token averaged over its pales.

  Returns [B, N s_r, N s_c, C]; token (i, j) gets the mean of its output in pale
  (i mod N) and, when j mod N differs, in pale (j mod N).
  """
  channels = x.shape[-1]
  batch = _batch(x)
  row_len = rows * cols * n
  row_part = tf.reshape(x[:, :, :row_len], [batch, n, rows, cols, n, channels])
  row_part = tf.transpose(row_part, [0, 2, 1, 3, 4, 5])
  row_part = tf.reshape(row_part, [batch, n * rows, n * cols, channels])
  if _is_static(n) and n == 1:
    return row_part
  col_part = tf.reshape(x[:, :, row_len:], [batch, n, n - 1, rows * cols * channels])
  col_part = _insert_diagonal(col_part, n, [rows * cols * channels])
  col_part = tf.reshape(col_part, [batch, n, n, rows, cols, channels])  # [B, b, a, r, c, C]
  col_part = tf.transpose(col_part, [0, 3, 2, 4, 1, 5])  # [B, r, a, c, b, C]
  col_part = tf.reshape(col_part, [batch, n * rows, n * cols, channels])
  same_pale = tf.equal(tf.range(n * rows)[:, None] % n, tf.range(n * cols)[None, :] % n)
  scale = tf.where(same_pale, 1.0, 0.5)[None, :, :, None]
  return (row_part + col_part) * tf.cast(scale, x.dtype)


@tf.autograph.experimental.do_not_convert
def grouped_attention(q, k, v, key_valid=None):
  """Multi-head self-attention inside each group (the MSA of Eq. 2).

  Args:
    q, k, v: [B, G, heads, L, d] queries, keys, values of G independent groups of L
      tokens; logits scaled by d^-1/2 (ViT, CSWin).
    key_valid: None or float32 [1 or B, G, L], 1 for real keys and 0 for padded ones:
      padded keys get weight 0 (see the module docstring for how).

  Returns:
    ([B, G, heads, L, d] output, float32 [B, G, heads, L, L] softmax weights).
  """
  q = q * tf.cast(q.shape[-1] ** -0.5, q.dtype)
  logits = tf.cast(tf.einsum("bghqd,bghkd->bghqk", q, k), tf.float32)
  if key_valid is None:
    weights = tf.nn.softmax(logits, axis=-1)
  else:
    valid = tf.cast(key_valid, tf.float32)[:, :, None, None, :]
    floor = tf.stop_gradient(tf.reduce_min(logits, axis=-1, keepdims=True))
    weights = tf.nn.softmax(tf.where(valid > 0, logits, floor), axis=-1) * valid
    weights = weights / tf.reduce_sum(weights, axis=-1, keepdims=True)
  out = tf.einsum("bghqk,bghkd->bghqd", tf.cast(weights, v.dtype), v)
  return out, weights


@tf.autograph.experimental.do_not_convert
def axis_attention(q, k, v, num_heads, size, axis, interlaced=True, return_weights=False):
  """Attention within groups of `size` rows (axis 1) or columns (axis 2).

  Pads the grouped axis to a multiple of `size`, masks the padded keys, crops back.

  Args:
    q, k, v: [B, H, W, C].
    num_heads: heads over the C channels.
    size: rows (columns) per group.
    axis: 1 for row groups, 2 for column groups.
    interlaced: interlaced groups (pale) or contiguous stripes (CSWin).
    return_weights: also return the weights and the key validity.

  Returns:
    ([B, H, W, C] output, [(float32 weights [B, G, heads, L, L], key validity [1, G, L])]),
    the list empty unless `return_weights`.
  """
  dims = _dims(q)
  length, other = dims[axis], dims[3 - axis]
  padded = (length + size - 1) // size * size
  needs_mask = not (_is_static(length, padded) and length == padded)
  if needs_mask:
    q, k, v = (_pad_end(t, axis, padded) for t in (q, k, v))
  qg, kg, vg = (group_tokens(t, size, axis, interlaced, num_heads) for t in (q, k, v))
  valid = None
  if needs_mask or return_weights:
    valid = tf.cast(tf.range(padded) < length, tf.float32)
    shape = [1, padded, other, 1] if axis == 1 else [1, other, padded, 1]
    valid = valid[None, :, None, None] if axis == 1 else valid[None, None, :, None]
    valid = group_tokens(tf.broadcast_to(valid, shape), size, axis, interlaced)[:, :, 0, :, 0]
  out, weights = grouped_attention(qg, kg, vg, valid if needs_mask else None)
  out = ungroup_tokens(out, size, other, axis, interlaced)
  if needs_mask:
    out = out[:, :length] if axis == 1 else out[:, :, :length]
  return out, [(weights, valid)] if return_weights else []


@tf.autograph.experimental.do_not_convert
def vanilla_pale_attention(q, k, v, num_heads, pale_size, return_weights=False):
  """Attention within each whole pale (Table 8 "Pale (vanilla)").

  Args:
    q, k, v: [B, H, W, C].
    num_heads: heads over the C channels.
    pale_size: (s_r, s_c).
    return_weights: also return the weights and the key validity.

  Returns:
    ([B, H, W, C] output, [(float32 weights [B, N, heads, L, L], key validity [1, N, L])]),
    the list empty unless `return_weights`.
  """
  rows, cols = pale_size
  _, height, width, _ = _dims(q)
  if _is_static(height, width):
    n = max((height + rows - 1) // rows, (width + cols - 1) // cols)
  else:
    n = tf.maximum((height + rows - 1) // rows, (width + cols - 1) // cols)
  q, k, v = (_pad_end(_pad_end(t, 1, n * rows), 2, n * cols) for t in (q, k, v))
  qp, kp, vp = (pale_tokens(t, rows, cols, n) for t in (q, k, v))
  needs_mask = not (_is_static(height, width, n) and
                    (height, width) == (n * rows, n * cols))
  valid = None
  if needs_mask or return_weights:
    valid = tf.cast(tf.logical_and(tf.range(n * rows)[:, None] < height,
                                   tf.range(n * cols)[None, :] < width), tf.float32)
    valid = pale_tokens(valid[None, :, :, None], rows, cols, n)[..., 0]
  out, weights = grouped_attention(*[split_heads(t, num_heads) for t in (qp, kp, vp)],
                                   valid if needs_mask else None)
  out = pale_untokens(merge_heads(out), rows, cols, n)
  if needs_mask:
    out = out[:, :height, :width]
  return out, [(weights, valid)] if return_weights else []


@tf.autograph.experimental.do_not_convert
def pale_attention(q, k, v, num_heads, pale_size=7, mode="parallel",
                   sequential_direction="row", return_weights=False):
  """Attention of projected queries, keys and values within pales (or `mode`'s groups).

  Args:
    q, k, v: [B, H, W, C] (any H, W; padded and cropped as needed).
    num_heads: total heads (split in half between branches in the two-branch modes).
    pale_size: int or (s_r, s_c).
    mode: one of MODES (see the module docstring).
    sequential_direction: "row" or "column", the group kind of mode "sequential".
    return_weights: also return [(float32 softmax weights, key validity)] per branch,
      for tests and inspection.

  Returns:
    [B, H, W, C], or (that, weights) when `return_weights`.
  """
  rows, cols = check_pale_size(pale_size)
  validation.check_in("mode", mode, MODES)
  q, k, v = (tf.convert_to_tensor(t) for t in (q, k, v))
  validation.check_in("sequential_direction", sequential_direction, DIRECTIONS)
  if mode == "vanilla":
    out, weights = vanilla_pale_attention(q, k, v, num_heads, (rows, cols), return_weights)
  elif mode == "sequential":
    axis, size = (1, rows) if sequential_direction == "row" else (2, cols)
    out, weights = axis_attention(q, k, v, num_heads, size, axis,
                                  return_weights=return_weights)
  else:
    if mode == "axial":
      rows = cols = 1
    interlaced = mode != "cross_shaped"
    halves = [tf.split(t, 2, axis=-1) for t in (q, k, v)]
    branches = []
    weights = []
    # Eq. 1-3: the first half of the channels attends within row groups, the second
    # within column groups; Concat(Y_r, Y_c).
    for branch, (axis, size) in enumerate(((1, rows), (2, cols))):
      out, branch_weights = axis_attention(*[h[branch] for h in halves], num_heads // 2,
                                           size, axis, interlaced, return_weights)
      branches.append(out)
      weights.extend(branch_weights)
    out = tf.concat(branches, axis=-1)
  if return_weights:
    return out, weights
  return out


def _depthwise_initializer():
  # PyTorch's default for a 3x3 depthwise conv (kaiming_uniform(a=sqrt(5)), fan_in = 9):
  # U(-1/3, 1/3). tf_keras's fan-based initializers would use fan_in = 9 * C here.
  return tf_keras.initializers.RandomUniform(-1.0 / 3.0, 1.0 / 3.0)


def linear(units, use_bias=True, activation=None, name=None):
  """A Linear layer over the channels of [B, H, W, C] maps (PyTorch's nn.Linear on tokens).

  An EinsumDense: one einsum op, where Dense on a rank-4 input builds a tensordot of a
  dozen ops (a quarter of a Pale model's graph). Weights trunc_normal(std=0.02), bias
  zero: CSWin / Swin `_init_weights`.
  """
  return tf_keras.layers.EinsumDense(
      "bhwc,cd->bhwd", output_shape=(None, None, units), activation=activation,
      bias_axes="d" if use_bias else None,
      kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02),
      bias_initializer="zeros", name=name)


@tf_keras.utils.register_keras_serializable(package="tfvision")
class SeparableConvProjection(tf_keras.layers.Layer):
  """Depthwise 3x3 conv -> BatchNorm -> pointwise (linear) projection, stride 1.

  CvT's "dw_bn" convolutional projection (`cls_cvt.py` `_build_projection`: depthwise
  conv without bias, BatchNorm2d, then `nn.Linear(dim_in, dim_out, bias=qkv_bias)`),
  which Pale follows for phi_Q, phi_K, phi_V (Eq. 2, "similar to (Wu et al. 2021a)").
  Stride 1 for queries, keys and values alike: Eq. 13-14 count hw keys (CvT squeezes
  keys and values with stride 2; Pale does not).

  Args:
    filters: output channels.
    use_bias: bias of the pointwise projection (CvT-13 `QKV_BIAS: True`).
    norm: "batch" or "sync_batch" (synchronized across replicas).
    norm_momentum, norm_epsilon: BatchNorm settings (PyTorch defaults: 0.9, 1e-5).
  Input: [B, H, W, C_in]; output: [B, H, W, filters].
  """

  def __init__(self, filters, use_bias=True, norm="batch", norm_momentum=0.9,
               norm_epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.filters = validation.check_positive("filters", filters, integer=True)
    self.use_bias = bool(use_bias)
    self.norm = validation.check_in("norm", norm, ("batch", "sync_batch"))
    self.norm_momentum = validation.check_probability("norm_momentum", norm_momentum)
    self.norm_epsilon = validation.check_positive("norm_epsilon", norm_epsilon)
    self.depthwise = tf_keras.layers.DepthwiseConv2D(
        3, padding="same", use_bias=False, depthwise_initializer=_depthwise_initializer(),
        name="depthwise")
    self.bn = make_norm(norm, norm_momentum, norm_epsilon, name="bn")
    self.pointwise = linear(filters, use_bias=use_bias, name="pointwise")

  def call(self, inputs, training=None):
    return self.pointwise(self.bn(self.depthwise(inputs), training=training))

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, use_bias=self.use_bias, norm=self.norm,
                  norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon)
    return config


@tf_keras.utils.register_keras_serializable(package="tfvision")
class ConditionalPositionEncoding(tf_keras.layers.Layer):
  """x + DepthwiseConv3x3(x) + b: the CPE of Eq. 6 (Chu et al. 2021b's PEG).

  "The CPE is implemented as a simple depth-wise convolution" (Sec. "Pale Transformer
  Block"); 3x3 with bias and zero padding as the PEG of CPVT / Twins. The bias is added
  after the residual sum (the same function): TF's CPU remapper otherwise tries to fuse
  depthwise conv + BiasAdd + Add into a kernel that does not exist and logs an error.

  Input: [B, H, W, C]; output: same shape.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.depthwise = tf_keras.layers.DepthwiseConv2D(
        3, padding="same", use_bias=False, depthwise_initializer=_depthwise_initializer(),
        name="depthwise")

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"ConditionalPositionEncoding needs a known channel count, received "
                       f"input_shape={tuple(input_shape)!r}")
    self.depthwise.build(input_shape)
    self.bias = self.add_weight("bias", shape=(channels,), initializer="zeros")
    super().build(input_shape)

  def call(self, inputs):
    return tf.nn.bias_add(inputs + self.depthwise(inputs), tf.cast(self.bias, inputs.dtype))


@tf_keras.utils.register_keras_serializable(package="tfvision")
class PaleShapedAttention(tf_keras.layers.Layer):
  """Pale-shaped self-attention with separable-conv q/k/v and an output projection.

  Eq. 1-3 (and Table 8's alternatives, `mode`): phi_Q, phi_K, phi_V are three
  `SeparableConvProjection`s over all C channels (Eq. 13 counts 3 (9hwc + hwc^2)), the
  attention runs per `pale_attention`, and a linear projection follows the
  concatenation (Eq. 15, hwc^2; CSWin's `proj`).

  Args:
    channels: C, the channels of q, k, v and of the output.
    num_heads: heads (Table 1's H_i); in the two-branch modes each branch gets half.
    pale_size: int or (s_r, s_c) (Table 1's S_i = 7).
    mode: "parallel" (default, the paper's), "sequential", "vanilla", "axial" or
      "cross_shaped" (module docstring).
    sequential_direction: "row" or "column", used by mode "sequential".
    qkv_bias: bias of the q/k/v pointwise projections (CvT, CSWin: True).
    norm: the projections' BatchNorm kind ("batch" or "sync_batch").
    norm_momentum, norm_epsilon: the projections' BatchNorm (PyTorch defaults).
  Input: [B, H, W, C_in] (any H, W); output: [B, H, W, channels].
  """

  def __init__(self, channels, num_heads, pale_size=7, mode="parallel",
               sequential_direction="row", qkv_bias=True, norm="batch", norm_momentum=0.9,
               norm_epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    check_heads(channels, num_heads, mode)
    self.channels = channels
    self.num_heads = num_heads
    self.pale_size = (list(pale_size) if isinstance(pale_size, (list, tuple))
                      else pale_size)
    self._pale_size = check_pale_size(pale_size)
    self.mode = mode
    self.sequential_direction = validation.check_in(
        "sequential_direction", sequential_direction, DIRECTIONS)
    self.qkv_bias = bool(qkv_bias)
    self.norm = norm
    self.norm_momentum = norm_momentum
    self.norm_epsilon = norm_epsilon
    projection = dict(use_bias=qkv_bias, norm=norm, norm_momentum=norm_momentum,
                      norm_epsilon=norm_epsilon)
    self.query = SeparableConvProjection(channels, name="query", **projection)
    self.key = SeparableConvProjection(channels, name="key", **projection)
    self.value = SeparableConvProjection(channels, name="value", **projection)
    self.proj = linear(channels, name="proj")

  def attend(self, inputs, training=None, return_weights=False):
    """The attention output before the final projection (and optionally its weights)."""
    q = self.query(inputs, training=training)
    k = self.key(inputs, training=training)
    v = self.value(inputs, training=training)
    return pale_attention(q, k, v, self.num_heads, self._pale_size, self.mode,
                          self.sequential_direction, return_weights=return_weights)

  def call(self, inputs, training=None):
    return self.proj(self.attend(inputs, training=training))

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.channels])

  def get_config(self):
    config = super().get_config()
    config.update(channels=self.channels, num_heads=self.num_heads,
                  pale_size=self.pale_size, mode=self.mode,
                  sequential_direction=self.sequential_direction, qkv_bias=self.qkv_bias,
                  norm=self.norm, norm_momentum=self.norm_momentum,
                  norm_epsilon=self.norm_epsilon)
    return config
