"""textcnn: train text CNN classifiers and score large Parquet corpora on Ray."""

__version__ = "0.1.0"
