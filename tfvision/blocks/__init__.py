"""Residual and transformer blocks built from tfvision.layers."""
from tfvision.blocks.bottleneck_transformer import (BottleneckTransformerBlock,
                                                    ResNetBottleneckBlock)
from tfvision.blocks.pale import OverlappingPatchMerging, PaleTransformerBlock
from tfvision.blocks.axial import AxialBottleneckBlock
from tfvision.blocks.residual import WideResidualBlock
from tfvision.blocks.resnest import AveragePoolDownsample, ResNeStBottleneck

__all__ = [
    "AveragePoolDownsample", "AxialBottleneckBlock", "BottleneckTransformerBlock",
    "OverlappingPatchMerging", "PaleTransformerBlock", "ResNeStBottleneck",
    "ResNetBottleneckBlock", "WideResidualBlock",
]
