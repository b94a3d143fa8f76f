"""Write small IDX files (the MNIST format) for tests of the torchvision loaders."""

import gzip
import struct
from pathlib import Path

import numpy as np

_TYPES = {np.uint8: 0x08, np.int32: 0x0C}


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Big-endian IDX: magic (0, 0, type, ndim), the dimensions, then the data."""
    dtype = array.dtype.type
    header = struct.pack(">BBBB", 0, 0, _TYPES[dtype], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_dataset(folder: Path, names: dict, sizes=(60, 20), classes=10, compress=False, seed=0) -> dict:
    """Images and labels for the 'train' and 'test' parts; ``names[part] = (images, labels)`` file names."""
    rng = np.random.default_rng(seed)
    labels_out = {}
    for part, size in zip(("train", "test"), sizes):
        images = rng.integers(0, 256, size=(size, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, classes, size=size).astype(np.uint8)
        image_name, label_name = names[part]
        write_idx(folder / image_name, images, compress)
        if label_name.endswith("idx2-int"):  # QMNIST: 8 int32 columns, the class first
            table = np.zeros((size, 8), dtype=np.int32)
            table[:, 0] = labels
            write_idx(folder / label_name, table, compress)
        else:
            write_idx(folder / label_name, labels, compress)
        labels_out[part] = labels
    return labels_out
