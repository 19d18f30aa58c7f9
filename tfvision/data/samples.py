"""Sample images generated on the fly: textured backgrounds with coloured shapes.

No image files are shipped; a seed determines every pixel, so demos and tests see the
same pictures on every machine.
"""
import numpy as np

_SHAPES = ("disk", "square", "triangle")


def _background(rng, height, width):
  """A smooth two-colour stripe texture with a little noise."""
  yy, xx = np.mgrid[0:height, 0:width].astype("float32")
  angle = rng.uniform(0, np.pi)
  freq = rng.uniform(0.03, 0.12)
  wave = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
  colour_a = rng.uniform(0, 255, 3)
  colour_b = rng.uniform(0, 255, 3)
  image = wave[..., None] * colour_a + (1 - wave[..., None]) * colour_b
  image += rng.normal(0, 6, image.shape)
  return image


def shape_mask(kind, height, width, centre, radius):
  """Boolean [height, width] mask of a disk, square or upward triangle."""
  yy, xx = np.mgrid[0:height, 0:width].astype("float32")
  cy, cx = centre
  if kind == "disk":
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
  if kind == "square":
    return (np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= radius)
  if kind == "triangle":
    top = cy - radius
    inside_rows = (yy >= top) & (yy <= cy + radius)
    half_width = (yy - top) / 2.0
    return inside_rows & (np.abs(xx - cx) <= half_width)
  raise ValueError(f"kind must be one of {_SHAPES}, received kind={kind!r}")


def make_sample_images(count=4, size=224, seed=0, max_shapes=4):
  """Returns `count` uint8 RGB images [count, size, size, 3] of shapes on textures."""
  if count < 1 or size < 8:
    raise ValueError(f"need count >= 1 and size >= 8, received count={count!r}, size={size!r}")
  rng = np.random.RandomState(seed)
  images = []
  for _ in range(count):
    image = _background(rng, size, size)
    for _ in range(rng.randint(1, max_shapes + 1)):
      kind = _SHAPES[rng.randint(len(_SHAPES))]
      radius = rng.uniform(0.08, 0.22) * size
      centre = rng.uniform(radius, size - radius, 2)
      mask = shape_mask(kind, size, size, centre, radius)
      image[mask] = rng.uniform(0, 255, 3)
    images.append(np.clip(image, 0, 255).astype("uint8"))
  return np.stack(images)
