"""Residual and transformer blocks built from tfvision.layers."""
from tfvision.blocks.axial import AxialBottleneckBlock
from tfvision.blocks.residual import WideResidualBlock

__all__ = ["AxialBottleneckBlock", "WideResidualBlock"]
