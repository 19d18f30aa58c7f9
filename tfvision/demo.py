"""`make demo`: build a model from the zoo by name and run it on sample images.

    python -m tfvision.demo [--model swidernet_0.25_0.25_0.75] [--size 224]

Prints the parameter count, MACs, the classifier's output shape, the backbone's
endpoint shapes and the measured images/second, and writes the sample images as PNG.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvision.data.samples import make_sample_images  # noqa: E402
from tfvision.models import create_model, get_model_entry, list_models  # noqa: E402
from tfvision.utils.flops import count_macs, format_count  # noqa: E402


def _save_png(path, image):
  tf.io.write_file(path, tf.io.encode_png(image))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="swidernet_0.25_0.25_0.75",
                      help="registry name; see --list")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--images", type=int, default=4)
  parser.add_argument("--output-dir", default="demo_output")
  parser.add_argument("--list", action="store_true", help="list the model zoo and exit")
  args = parser.parse_args(argv)
  if args.list:
    for name in list_models():
      entry = get_model_entry(name)
      print(f"{name:32s} {entry.family:12s} {entry.paper}")
    return 0

  entry = get_model_entry(args.model)
  images = make_sample_images(args.images, args.size, seed=0)
  os.makedirs(args.output_dir, exist_ok=True)
  for i, image in enumerate(images):
    _save_png(os.path.join(args.output_dir, f"sample_{i}.png"), image)
  print(f"model: {args.model} ({entry.paper})")
  print(f"sample images: {len(images)} x {args.size}x{args.size} written to "
        f"{os.path.abspath(args.output_dir)}/sample_*.png")

  model = create_model(args.model, input_shape=(args.size, args.size, 3))
  params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
  macs = count_macs(model, (args.size, args.size, 3))
  print(f"parameters: {params:,d} (with 1000-class head); MACs/image: {format_count(macs)}")

  pixels = tf.constant(images.astype("float32"))
  predict = tf.function(lambda x: model(x, training=False))
  logits = predict(pixels)  # trace
  start = time.perf_counter()
  repeats = 3
  for _ in range(repeats):
    logits = predict(pixels)
    _ = logits.numpy()
  elapsed = time.perf_counter() - start
  print(f"classifier output: {tuple(logits.shape)} logits; "
        f"top-1 ids of the random-weight model: {np.argmax(logits.numpy(), -1).tolist()}")
  print(f"throughput: {repeats * len(images) / elapsed:.1f} images/second "
        f"(batch {len(images)}, {args.size}x{args.size}, CPU inference)")

  backbone = create_model(args.model, include_top=False)
  endpoints = backbone(pixels, training=False)
  for key in sorted(endpoints):
    print(f"  endpoint {key} (stride {2 ** int(key)}): {tuple(endpoints[key].shape)}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
