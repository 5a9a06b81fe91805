"""parabeam: bitext mining at scale with Apache Beam.

Subpackages: ``parabeam.mining`` (numpy/FAISS math, text processing, readers, the Parquet schema),
``parabeam.encoders`` (encoder interface and backends, training, evaluation) and ``parabeam.pipelines`` (the Beam
stages, configuration and the command line; the only package that imports Beam).
"""

__version__ = "0.2.0"
