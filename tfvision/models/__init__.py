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
from tfvision.models.heads import ClassificationHead
from tfvision.models.registry import (ModelEntry, create_model, get_model_entry, list_models,
                                      register_model)
from tfvision.models.swidernet import SWideRNet, WideResNet41

__all__ = [
    "AxialDeepLabLBackbone", "AxialDeepLabSBackbone", "AxialResNet", "AxialResNetL",
    "AxialResNetM", "AxialResNetS", "AxialResNetXL", "AxialSWideRNet", "FullAxialResNetS",
    "ClassificationHead", "ModelEntry", "SWideRNet", "VisionModel", "WideResNet41",
    "create_model", "get_model_entry", "list_models", "register_model",
]
