"""MNIST-style datasets through torchvision: MNIST, Fashion-MNIST, KMNIST, EMNIST and QMNIST.

torchvision reads the IDX files from ``<root>/<ClassName>/raw``. A folder that holds the four IDX files
directly (compressed or not), such as ``/usr/share/datasets/fashion-mnist`` from Debian's
``dataset-fashion-mnist`` package, is staged into that layout under ``cache_dir`` first (decompressed
once), so torchvision's own loaders do the reading.
"""

from __future__ import annotations

import gzip
import lzma
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from rpn_exp.data.base import TensorDataModule, split_off
from rpn_exp.files import open_new

EMNIST_CLASSES = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10, "mnist": 10}


@dataclass(frozen=True)
class VisionSpec:
    torchvision_class: str
    num_classes: int
    system_folders: tuple[str, ...] = ()
    how_to_get: str = ""

    def files(self, split: str | None) -> dict[str, list[str]]:
        """Raw IDX file names torchvision expects, per part ("train", "test")."""
        if self.torchvision_class == "EMNIST":
            return {
                part: [f"emnist-{split}-{part}-images-idx3-ubyte", f"emnist-{split}-{part}-labels-idx1-ubyte"]
                for part in ("train", "test")
            }
        if self.torchvision_class == "QMNIST":
            return {
                part: [f"qmnist-{part}-images-idx3-ubyte", f"qmnist-{part}-labels-idx2-int"]
                for part in ("train", "test")
            }
        return {
            "train": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
            "test": ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        }


SPECS = {
    "mnist": VisionSpec("MNIST", 10),
    "fashion_mnist": VisionSpec(
        "FashionMNIST",
        10,
        system_folders=("/usr/share/datasets/fashion-mnist",),
        how_to_get="on Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (installs the IDX files into "
        "/usr/share/datasets/fashion-mnist, found automatically)",
    ),
    "kmnist": VisionSpec("KMNIST", 10),
    "emnist": VisionSpec("EMNIST", 47),
    "qmnist": VisionSpec("QMNIST", 10),
}


class VisionDataModule(TensorDataModule):
    """An MNIST-style torchvision dataset, flattened to 784 features and preloaded as tensors.

    Args:
        dataset: one of ``mnist``, ``fashion_mnist``, ``kmnist``, ``emnist``, ``qmnist``.
        root: folder with the data, in torchvision's layout or holding the IDX files directly; it must exist,
            and only it is searched. None: search ``cache_dir`` and the system folders (Debian's package).
        download: let torchvision download into ``root`` (or ``cache_dir``) when nothing is found (needs a network).
        split: EMNIST split (byclass, bymerge, balanced, letters, digits, mnist).
        val_fraction: share of the training set held out for validation (seeded, stratified).
        cache_dir: where IDX files found outside torchvision's layout are staged (default: ``root``, else ``data``).

    Every IDX file is checked (its header against its size) before it is staged or read, and the labels against
    the number of classes: a damaged file is named in a :class:`DatasetError`, never staged.
    """

    num_features = 784
    grid = (1, 28, 28, 1)

    def __init__(
        self,
        dataset: str = "mnist",
        root: str | None = None,
        download: bool = False,
        split: str = "balanced",
        val_fraction: float = 0.1,
        cache_dir: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        seed: int = 0,
    ):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        if dataset not in SPECS:
            raise ValueError(f"dataset={dataset!r} is not a torchvision dataset here; valid choices: {sorted(SPECS)}")
        if dataset == "emnist" and split not in EMNIST_CLASSES:
            raise ValueError(f"split={split!r} is invalid for EMNIST; valid choices: {list(EMNIST_CLASSES)}")
        self.name, self.spec = dataset, SPECS[dataset]
        self.root = Path(root).expanduser() if root is not None else None
        self.download, self.split = download, split
        self.val_fraction = val_fraction
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else (self.root or Path("data"))
        self.staged: list[Path] = []  # files this module staged into cache_dir (removed again if refused)

    @property
    def num_classes(self) -> int:
        return EMNIST_CLASSES[self.split] if self.name == "emnist" else self.spec.num_classes

    def candidate_folders(self) -> list[Path]:
        """Folders searched for the IDX files, in order."""
        raw = lambda base: base / self.spec.torchvision_class / "raw"  # noqa: E731
        if self.root is not None:  # the folder asked for, and nothing else
            return list(dict.fromkeys([raw(self.root), self.root, self.root / "raw"]))
        folders = [raw(self.cache_dir), *(Path(p) for p in self.spec.system_folders)]
        return list(dict.fromkeys(folders))

    def _find(self, folder: Path, name: str) -> Path | None:
        for suffix in ("", ".gz", ".xz"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
        return None

    def locate(self) -> Path | None:
        """The torchvision root holding ``<ClassName>/raw`` with every file, staging files if needed."""
        names = [n for part in self.spec.files(self.split).values() for n in part]
        for folder in self.candidate_folders():
            found = {n: self._find(folder, n) for n in names}
            if not all(found.values()):
                continue
            if folder == folder.parent.parent / self.spec.torchvision_class / "raw" and all(
                p.name == n for n, p in found.items()
            ):
                for path in found.values():
                    check_idx(path)
                return folder.parent.parent
            target = self.cache_dir / self.spec.torchvision_class / "raw"
            target.mkdir(parents=True, exist_ok=True)
            for name, path in found.items():
                if not (target / name).exists():
                    self.staged.append(target / name)
                _stage(path, target / name)
            return self.cache_dir
        return None

    def missing(self) -> str | None:
        if self.download:
            return None
        if self.root is not None and not self.root.is_dir():
            return f"root={self.root} does not exist; give the folder that holds the {self.name} IDX files"
        names = [n for part in self.spec.files(self.split).values() for n in part]
        if any(all(self._find(folder, n) for n in names) for folder in self.candidate_folders()):
            return None
        return self.missing_message()

    def missing_message(self) -> str:
        searched = "\n".join(f"  - {p}" for p in self.candidate_folders())
        names = ", ".join(n for part in self.spec.files(self.split).values() for n in part)
        ways = [
            f"put the IDX files ({names}, optionally .gz) into one of those folders, or give root=<a folder that "
            "holds them>",
            "or set download=true to let torchvision download them (needs network access)",
        ]
        if self.spec.how_to_get:
            ways.insert(0, self.spec.how_to_get)
        return (
            f"{self.name} not found. Searched:\n{searched}\nTo get it:\n" + "\n".join(f"  * {w}" for w in ways)
        )

    def _torchvision(self, root: Path, train: bool, download: bool):
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.spec.torchvision_class)
        kwargs = {"split": self.split} if self.name == "emnist" else {}
        return cls(str(root), train=train, download=download, **kwargs)

    def load(self):
        if self.root is not None and not self.root.is_dir() and not self.download:
            raise FileNotFoundError(
                f"root={self.root} does not exist; give the folder that holds the {self.name} IDX files, "
                "or leave root unset to search the usual places (" +
                ", ".join(str(p) for p in [self.cache_dir, *self.spec.system_folders]) + ")"
            )
        root = self.locate()
        if root is None:
            if not self.download:
                raise FileNotFoundError(self.missing_message())
            root = self.root or self.cache_dir
        parts = {}
        for part in ("train", "test"):
            fetch = self.download and root == (self.root or self.cache_dir)
            ds = self._torchvision(root, part == "train", download=fetch)
            x = ds.data.reshape(len(ds.data), -1)  # uint8 pixels; batches are standardized as they are drawn
            y = ds.targets[:, 0] if ds.targets.ndim == 2 else ds.targets  # QMNIST: column 0 is the class
            if self.name == "emnist" and self.split == "letters":
                y = y - 1  # letters are labelled 1..26
            y = y.to(torch.int64)
            if len(y) != len(x):
                raise DatasetError(f"the {part} files of {self.name} in {root} disagree: {len(x):,} images but "
                                   f"{len(y):,} labels (an IDX header counts the wrong number of items); replace them")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                for path in self.staged:  # refused data does not stay in the cache
                    path.unlink(missing_ok=True)
                raise DatasetError(
                    f"the {part} labels of {self.name} in {root} hold {int(y.min())}..{int(y.max())}, outside the "
                    f"{self.num_classes} classes 0..{self.num_classes - 1}: the labels file is not this dataset's"
                )
            parts[part] = (x, y)
        problem = degenerate(*parts["train"])
        if problem:
            raise DatasetError(f"the train images of {self.name} in {root} {problem}: there is nothing to learn; "
                               f"replace the files")
        train, val = split_off(*parts["train"], self.val_fraction, self.seed)
        return {"train": train, "val": val, "test": parts["test"]}


#: Bytes per value of each IDX data type code.
IDX_ITEM_SIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}
IDX_TYPE_NAMES = {0x08: "unsigned bytes", 0x09: "signed bytes", 0x0B: "16-bit integers", 0x0C: "32-bit integers",
                  0x0D: "32-bit floats", 0x0E: "64-bit floats"}


def degenerate(x: torch.Tensor, y: torch.Tensor) -> str | None:
    """What makes a training split unlearnable (every pixel the same value, one class only), or None."""
    if len(x) and bool((x == x.reshape(-1)[0]).all()):
        return f"all have the same value {x.reshape(-1)[0].item()} in every pixel"
    classes = torch.unique(y)
    if len(classes) < 2:
        return f"all have the label {classes.tolist()[0] if len(classes) else None}"
    return None


class DatasetError(ValueError):
    """A dataset file that cannot be this dataset: damaged, truncated or with labels out of range."""


def check_idx(path: Path, source: Path | None = None) -> None:
    """Raise DatasetError, naming ``source`` (default ``path``), unless ``path`` is a complete uncompressed IDX
    file: magic 0x00 0x00 <type> <dims>, the dimensions, then exactly prod(dims) values."""
    source = source or path
    with open(path, "rb") as handle:
        header = handle.read(4)
        if len(header) < 4 or header[:2] != b"\0\0" or header[2] not in IDX_ITEM_SIZE:
            raise DatasetError(f"{source} is not an IDX file (its first bytes are {header!r}); replace it")
        dims = [int.from_bytes(handle.read(4), "big") for _ in range(header[3])]
    if len(dims) == 3 and header[2] != 0x08:  # images: MNIST-style pixels are unsigned bytes
        raise DatasetError(f"{source} holds images of IDX type 0x{header[2]:02X} ({IDX_TYPE_NAMES[header[2]]}); "
                           f"MNIST-style images are unsigned bytes (type 0x08, pixels 0..255): convert the file")
    expected = 4 + 4 * len(dims) + math.prod(dims) * IDX_ITEM_SIZE[header[2]]
    size = path.stat().st_size
    if size != expected:
        raise DatasetError(f"{source} is damaged: its header says {dims} ({expected:,} bytes) but it holds "
                           f"{size:,} bytes (truncated download or copy?); replace it with a complete file")


def _stage(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (decompressing .gz/.xz), checked as a complete IDX file before it takes its
    name; a staged file already there is checked too, and replaced when it is damaged.

    Each process writes its own temporary file (named with its process id) and renames it into place, so jobs that
    stage the same dataset at once never read or remove each other's half-written copy."""
    if target.exists():
        try:
            check_idx(target)
            return
        except DatasetError:
            target.unlink()  # an earlier, damaged staging: stage again from the source
    tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(source.suffix, open)
    try:
        with opener(source, "rb") as src, open_new(tmp) as dst:
            shutil.copyfileobj(src, dst)
        check_idx(tmp, source)
    except (OSError, EOFError, lzma.LZMAError, DatasetError) as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{source} cannot be read ({type(error).__name__}: {error}); replace it") from error
    tmp.replace(target)
