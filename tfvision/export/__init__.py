"""Deployment: SavedModel and TFLite export of every tfvision model, and `verify`.

    from tfvision import export
    model = export.load_model("swidernet_0.25_0.25_0.75", checkpoint="/path/model_dir",
                              model_kwargs={"num_classes": 10})
    export.export_saved_model(model, "/tmp/sm", input_size=224)
    result = export.export_tflite(model, "/tmp/m.tflite", input_size=224,
                                  quantization="int8", representative_data="shapes")
    images = export.load_images("shapes", 64, (224, 224))
    print(export.verify_tflite(result.flatbuffer, model, images).format())

The exporter is generic: it reads the task from the model's outputs (the contract in
`tfvision/export/contract.py`), never from its family. Command-line entry points:
`tfvision-export-saved-model`, `tfvision-export-tflite` (tfvision/export/cli.py).
"""
from tfvision.export.checkpoint import build_model, load_model, restore_checkpoint
from tfvision.export.contract import TASKS, infer_task, raw_outputs
from tfvision.export.data import load_images, shapes_examples, shapes_panoptic_info
from tfvision.export.serving import (SIGNATURES, ServingComputation, ServingSpec,
                                     decode_image, export_saved_model, read_metadata)
from tfvision.export.tflite import (QUANTIZATIONS, OpsReport, TFLiteExport, export_tflite,
                                    ops_report, xnnpack_delegated)
from tfvision.export.verify import (ParityReport, mean_iou, run_tflite, verify_saved_model,
                                    verify_tflite)

__all__ = [
    "OpsReport", "ParityReport", "QUANTIZATIONS", "SIGNATURES", "ServingComputation",
    "ServingSpec", "TASKS", "TFLiteExport", "build_model", "decode_image",
    "export_saved_model", "export_tflite", "infer_task", "load_images", "load_model",
    "mean_iou", "ops_report", "raw_outputs", "read_metadata", "restore_checkpoint",
    "run_tflite", "shapes_examples", "shapes_panoptic_info", "verify_saved_model",
    "verify_tflite", "xnnpack_delegated",
]
