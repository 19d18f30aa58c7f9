"""tf_keras layers, one module per mechanism; all registered under package "tfvision"."""
from tfvision.layers.axial_attention import AxialAttention2D, PositionSensitiveAxialAttention
from tfvision.layers.activations import get_activation, hard_sigmoid, hard_swish
from tfvision.layers.conv import (ConvNormAct, GlobalContext, SwitchableAtrousConv2D,
                                  symmetric_padding)
from tfvision.layers.pale_attention import (ConditionalPositionEncoding, PaleShapedAttention,
                                            SeparableConvProjection, pale_attention)
from tfvision.layers.preprocessing import Normalize
from tfvision.layers.relative_attention import RelativeMultiHeadSelfAttention2D
from tfvision.layers.regularization import (DropBlock, DropPath, drop_path_rate_for_stride,
                                            linear_drop_path_rates)
from tfvision.layers.split_attention import SplitAttention
from tfvision.layers.squeeze_excite import SimplifiedSqueezeExcite, SqueezeExcite
from tfvision.layers.aspp import AtrousSpatialPyramidPooling
from tfvision.layers.resize import ResizeToMatch, resize_align_corners
from tfvision.layers.separable_conv import SeparableConvNormAct

__all__ = [
    "AtrousSpatialPyramidPooling", "AxialAttention2D", "ConditionalPositionEncoding",
    "ConvNormAct", "DropBlock", "DropPath", "GlobalContext", "Normalize",
    "PaleShapedAttention", "PositionSensitiveAxialAttention",
    "RelativeMultiHeadSelfAttention2D", "ResizeToMatch", "SeparableConvNormAct",
    "SeparableConvProjection", "SimplifiedSqueezeExcite", "SplitAttention", "SqueezeExcite",
    "SwitchableAtrousConv2D", "drop_path_rate_for_stride", "get_activation", "hard_sigmoid",
    "hard_swish", "linear_drop_path_rates", "pale_attention", "resize_align_corners",
    "symmetric_padding",
]
