"""Model Garden tasks and experiments of tfvision.

Importing this package registers, with Model Garden's factories:

- the tasks (`official.core.task_factory`): `ImageClassificationTask`,
  `SemanticSegmentationTask`, `PanopticDeepLabTask`;
- the experiments (`official.core.exp_factory`), all named `tfvision_*`
  (`list_experiments()`);
- the backbone builders (`official.vision.modeling.backbones.factory`) of every
  tfvision family.
"""
from official.core import exp_factory

from tfvision.configs import image_classification as _classification_configs  # noqa: F401
from tfvision.configs import panoptic_deeplab as _panoptic_configs  # noqa: F401
from tfvision.configs import semantic_segmentation as _segmentation_configs  # noqa: F401
from tfvision.tasks import image_classification  # noqa: F401
from tfvision.tasks import panoptic_deeplab  # noqa: F401
from tfvision.tasks import semantic_segmentation  # noqa: F401

EXPERIMENT_PREFIX = "tfvision_"


def list_experiments():
  """Sorted names of the registered tfvision experiments."""
  return sorted(name for name in exp_factory._REGISTERED_CONFIGS  # pylint: disable=protected-access
                if isinstance(name, str) and name.startswith(EXPERIMENT_PREFIX))


__all__ = ["list_experiments"]
