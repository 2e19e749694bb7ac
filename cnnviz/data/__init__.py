"""Datasets: IDX files, the embedded MNIST sample, verified downloads, and tensor preparation.

Modules: ``idx`` (the file format), ``catalog`` (the downloadable datasets), ``download`` (fetching
into the cache), ``sources`` (raw uint8 datasets), ``prepare`` (tensors, splits, normalization).
"""
from cnnviz.data.catalog import DATASETS, DatasetInfo
from cnnviz.data.download import DownloadCancelled, default_cache_dir, fetch_dataset
from cnnviz.data.idx import read_idx, write_idx
from cnnviz.data.prepare import Normalization, PreparedData, Split, load_data, prepare
from cnnviz.data.sources import RawDataset, embedded_sample, find_idx_files, load_folder, load_raw

__all__ = [
    "DATASETS", "DatasetInfo", "DownloadCancelled", "Normalization", "PreparedData", "RawDataset",
    "Split", "default_cache_dir", "embedded_sample", "fetch_dataset", "find_idx_files", "load_data",
    "load_folder", "load_raw", "prepare", "read_idx", "write_idx",
]
