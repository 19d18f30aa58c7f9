"""tfvision: Axial-ResNet, SWideRNet, ResNeSt, BoTNet and Pale Transformer for tf_keras."""
__version__ = "0.1.0"

from tfvision import layers  # noqa: E402
from tfvision import models  # noqa: E402

__all__ = ["layers", "models", "__version__"]
