"""Residual and transformer blocks built from tfvision.layers."""
from tfvision.blocks.bottleneck_transformer import (BottleneckTransformerBlock,
                                                    ResNetBottleneckBlock)
from tfvision.blocks.residual import WideResidualBlock

__all__ = ["BottleneckTransformerBlock", "ResNetBottleneckBlock", "WideResidualBlock"]
