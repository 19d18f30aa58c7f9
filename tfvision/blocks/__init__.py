"""Residual and transformer blocks built from tfvision.layers."""
from tfvision.blocks.pale import OverlappingPatchMerging, PaleTransformerBlock
from tfvision.blocks.residual import WideResidualBlock

__all__ = ["OverlappingPatchMerging", "PaleTransformerBlock", "WideResidualBlock"]
