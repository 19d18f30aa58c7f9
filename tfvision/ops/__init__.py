"""Pure TensorFlow ops: panoptic targets and post-processing (batched, XLA-compilable)."""
