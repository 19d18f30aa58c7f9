"""Residual and transformer blocks built from tfvision.layers."""
from tfvision.blocks.residual import WideResidualBlock

__all__ = ["WideResidualBlock"]
