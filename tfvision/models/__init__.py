"""Model constructors (Keras Applications style), family specs and the presets.

    import tfvision
    model = tfvision.models.SWideRNet(0.25, 0.5, 1)
    model = tfvision.models.create_model("wide_resnet41", num_classes=10)
"""
from tfvision.models.axial_resnet import (AxialDeepLabLBackbone, AxialDeepLabSBackbone,
                                          AxialResNet, AxialResNetL, AxialResNetM,
                                          AxialResNetS, AxialResNetSpec, AxialResNetXL,
                                          AxialSWideRNet, AxialSWideRNetSpec,
                                          FullAxialResNetS)
from tfvision.models.base import VisionModel
from tfvision.models.botnet import (BoTNet, BoTNet50, BoTNet101, BoTNet152, BoTNet200,
                                    BoTNetS1, BoTNetSpec, BoTNetT3, BoTNetT4, BoTNetT5,
                                    BoTNetT6, BoTNetT7, ResNet, ResNet50, ResNet101,
                                    ResNet152, ResNet200, ResNetSpec)
from tfvision.models.heads import ClassificationHead
from tfvision.models.pale import (PaleTransformer, PaleTransformerBase, PaleTransformerSmall,
                                  PaleTransformerSpec, PaleTransformerTiny)
from tfvision.models.registry import Preset, create_model, get_preset, list_models
from tfvision.models.resnest import (ResNeSt, ResNeSt14, ResNeSt26, ResNeSt50, ResNeSt101,
                                     ResNeSt200, ResNeSt269, ResNeStSpec)
from tfvision.models.spec import ModelSpec, NormSpec
from tfvision.models.swidernet import SWideRNet, SWideRNetSpec, WideResNet41
from tfvision.models.panoptic_deeplab import (AxialDeepLabL, AxialDeepLabS, PanopticDeepLab,
                                              PanopticDeepLabSpec, PanopticDeepLabSWideRNet,
                                              panoptic_variant_name)
from tfvision.models.deeplab import (DeepLabV3, DeepLabV3Plus, DeepLabV3PlusSpec,
                                     DeepLabV3Spec)

__all__ = [
    "AxialDeepLabL", "AxialDeepLabLBackbone", "AxialDeepLabS", "AxialDeepLabSBackbone",
    "AxialResNet", "AxialResNetL", "AxialResNetM", "AxialResNetS", "AxialResNetSpec",
    "AxialResNetXL", "AxialSWideRNet", "AxialSWideRNetSpec", "BoTNet", "BoTNet101",
    "BoTNet152", "BoTNet200", "BoTNet50", "BoTNetS1", "BoTNetSpec", "BoTNetT3", "BoTNetT4",
    "BoTNetT5", "BoTNetT6", "BoTNetT7", "ClassificationHead", "DeepLabV3", "DeepLabV3Plus",
    "DeepLabV3PlusSpec", "DeepLabV3Spec", "FullAxialResNetS", "ModelSpec", "NormSpec",
    "PaleTransformer", "PaleTransformerBase", "PaleTransformerSmall", "PaleTransformerSpec",
    "PaleTransformerTiny", "PanopticDeepLab", "PanopticDeepLabSWideRNet",
    "PanopticDeepLabSpec", "Preset", "ResNeSt", "ResNeSt101", "ResNeSt14", "ResNeSt200",
    "ResNeSt26", "ResNeSt269", "ResNeSt50", "ResNeStSpec", "ResNet", "ResNet101", "ResNet152",
    "ResNet200", "ResNet50", "ResNetSpec", "SWideRNet", "SWideRNetSpec", "VisionModel",
    "WideResNet41", "create_model", "get_preset", "list_models", "panoptic_variant_name",
]
