"""Evaluation metrics and entry points (PQ / SQ / RQ, mIoU)."""
