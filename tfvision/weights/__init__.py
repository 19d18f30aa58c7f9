"""Released weights for tfvision models: converters, cache, loading (see `api`)."""
from tfvision.weights.api import (CONVERTERS, convert, fetch, load_converted, load_source,
                                  load_weights, pretrained, release_of, released_presets)
from tfvision.weights.download import DownloadError, cache_home
from tfvision.weights.labels import class_names, synsets
from tfvision.weights.mapping import WeightsMismatchError

__all__ = ["CONVERTERS", "DownloadError", "WeightsMismatchError", "cache_home", "class_names",
           "convert", "synsets",
           "fetch", "load_converted", "load_source", "load_weights", "pretrained",
           "release_of", "released_presets"]
