"""tf_keras layers, one module per mechanism; all registered under package "tfvision"."""
from tfvision.layers.axial_attention import AxialAttention2D, PositionSensitiveAxialAttention
from tfvision.layers.activations import get_activation, hard_sigmoid, hard_swish
from tfvision.layers.conv import (ConvNormAct, GlobalContext, SwitchableAtrousConv2D,
                                  symmetric_padding)
from tfvision.layers.preprocessing import Normalize
from tfvision.layers.regularization import (DropBlock, DropPath, drop_path_rate_for_stride,
                                            linear_drop_path_rates)
from tfvision.layers.squeeze_excite import SimplifiedSqueezeExcite, SqueezeExcite

__all__ = [
    "AxialAttention2D", "PositionSensitiveAxialAttention",
    "ConvNormAct", "DropBlock", "DropPath", "GlobalContext", "Normalize",
    "SimplifiedSqueezeExcite", "SqueezeExcite", "SwitchableAtrousConv2D",
    "drop_path_rate_for_stride", "get_activation", "hard_sigmoid", "hard_swish",
    "linear_drop_path_rates", "symmetric_padding",
]
