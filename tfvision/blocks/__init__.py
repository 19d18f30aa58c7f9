"""Residual and transformer blocks built from tfvision.layers."""
from tfvision.blocks.residual import WideResidualBlock
from tfvision.blocks.resnest import AveragePoolDownsample, ResNeStBottleneck

__all__ = ["AveragePoolDownsample", "ResNeStBottleneck", "WideResidualBlock"]
