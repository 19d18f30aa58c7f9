"""tfvision: modern vision backbones for TensorFlow 2 / tf_keras."""
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

# The stack is decided in DESIGN.md: Model Garden 2.20 pins TensorFlow 2.20 and
# builds on tf_keras; numpy < 2.4 because Model Garden's fake-data helpers call
# np.reshape(newshape=...).
INSTALL_REQUIRES = [
    "tensorflow~=2.20.0",
    "tf-keras~=2.20.0",
    "tf-models-official==2.20.0",
    "tensorflow-datasets",
    # tensorflow-datasets 4.9 imports it when preparing a dataset but does not declare it.
    "importlib_resources",
    "ai-edge-litert",
    "numpy<2.4",
    "Pillow",
    "PyYAML",
]

EXTRAS_REQUIRE = {
    "test": ["pytest>=8", "pytest-xdist>=3"],
    # kecam: the ResNeSt / BoTNet peers; grpcio-tools compiles deeplab2's protos for the
    # deeplab2 rows of benchmarks/peers.py.
    "bench": ["keras-cv-attention-models", "grpcio-tools"],
}

setup(
    name="tfvision",
    version="0.1.0",
    description=("Axial-ResNet, SWideRNet, ResNeSt, BoTNet and Pale Transformer "
                 "backbones for TensorFlow 2 / tf_keras, trainable and deployable."),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tfvision", "tfvision.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "tfvision-demo=tfvision.demo:main",
            "tfvision-train=tfvision.train:main",
            "tfvision-export-saved-model=tfvision.export.cli:saved_model_main",
            "tfvision-export-tflite=tfvision.export.cli:tflite_main",
            "tfvision-convert=tfvision.weights.cli:main",
        ],
    },
    license="Apache-2.0",
)
