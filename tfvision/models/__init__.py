"""Model constructors (Keras Applications style) and the registry.

    import tfvision
    model = tfvision.models.SWideRNet(0.25, 0.5, 1)
    model = tfvision.models.create_model("wide_resnet41", num_classes=10)
"""
from tfvision.models.axial_resnet import (AxialDeepLabLBackbone, AxialDeepLabSBackbone,
                                          AxialResNet, AxialResNetL, AxialResNetM,
                                          AxialResNetS, AxialResNetXL, AxialSWideRNet,
                                          FullAxialResNetS)
from tfvision.models.base import VisionModel
from tfvision.models.botnet import (BoTNet, BoTNet50, BoTNet101, BoTNet152, BoTNet200,
                                    BoTNetS1, BoTNetT3, BoTNetT4, BoTNetT5, BoTNetT6,
                                    BoTNetT7, ResNet, ResNet50, ResNet101, ResNet152,
                                    ResNet200)
from tfvision.models.heads import ClassificationHead
from tfvision.models.pale import (PaleTransformer, PaleTransformerBase, PaleTransformerSmall,
                                  PaleTransformerTiny)
from tfvision.models.registry import (ModelEntry, create_model, get_model_entry, list_models,
                                      register_model)
from tfvision.models.resnest import ResNeSt, ResNeSt50, ResNeSt101, ResNeSt200, ResNeSt269
from tfvision.models.swidernet import SWideRNet, WideResNet41
from tfvision.models.panoptic_deeplab import (AxialDeepLabL, AxialDeepLabS, PanopticDeepLab,
                                              PanopticDeepLabSWideRNet,
                                              panoptic_variant_name)
from tfvision.models.deeplab import DeepLabV3, DeepLabV3Plus

__all__ = [
    "AxialDeepLabL", "AxialDeepLabS", "AxialDeepLabLBackbone", "AxialDeepLabSBackbone", "AxialResNet", "AxialResNetL",
    "AxialResNetM", "AxialResNetS", "AxialResNetXL", "AxialSWideRNet", "BoTNet",
    "BoTNet101", "BoTNet152", "BoTNet200", "BoTNet50", "BoTNetS1", "BoTNetT3", "BoTNetT4",
    "BoTNetT5", "BoTNetT6", "BoTNetT7", "ClassificationHead", "DeepLabV3", "DeepLabV3Plus",
    "FullAxialResNetS", "ModelEntry", "PaleTransformer", "PaleTransformerBase",
    "PaleTransformerSmall", "PaleTransformerTiny", "PanopticDeepLab",
    "PanopticDeepLabSWideRNet", "ResNeSt", "ResNeSt101", "ResNeSt200", "ResNeSt269",
    "ResNeSt50", "ResNet", "ResNet101", "ResNet152", "ResNet200", "ResNet50", "SWideRNet",
    "VisionModel", "WideResNet41", "create_model", "get_model_entry", "list_models",
    "panoptic_variant_name", "register_model",
]
