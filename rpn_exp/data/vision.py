"""MNIST-style datasets through torchvision: MNIST, Fashion-MNIST, KMNIST, EMNIST and QMNIST.

torchvision reads the IDX files from ``<root>/<ClassName>/raw``. A folder that holds the four IDX files
directly (compressed or not), such as ``/usr/share/datasets/fashion-mnist`` from Debian's
``dataset-fashion-mnist`` package, is staged into that layout under ``cache_dir`` first (decompressed
once), so torchvision's own loaders do the reading.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import TensorDataModule, split_off

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
        root: folder with the data, in torchvision's layout or holding the IDX files directly.
        download: let torchvision download into ``root`` when nothing is found (needs a network).
        split: EMNIST split (byclass, bymerge, balanced, letters, digits, mnist).
        val_fraction: share of the training set held out for validation (seeded, stratified).
        cache_dir: where IDX files found outside torchvision's layout are staged (default: ``root``).
    """

    num_features = 784

    def __init__(
        self,
        dataset: str = "mnist",
        root: str = "data",
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
            raise ValueError(f"dataset.split={split!r} is invalid for EMNIST; valid choices: {list(EMNIST_CLASSES)}")
        self.name, self.spec = dataset, SPECS[dataset]
        self.root, self.download, self.split = Path(root).expanduser(), download, split
        self.val_fraction = val_fraction
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root

    @property
    def num_classes(self) -> int:
        return EMNIST_CLASSES[self.split] if self.name == "emnist" else self.spec.num_classes

    def candidate_folders(self) -> list[Path]:
        """Folders searched for the IDX files, in order."""
        raw = lambda base: base / self.spec.torchvision_class / "raw"  # noqa: E731
        folders = [raw(self.root), self.root, self.root / "raw", raw(self.cache_dir)]
        folders += [Path(p) for p in self.spec.system_folders]
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
                return folder.parent.parent
            target = self.cache_dir / self.spec.torchvision_class / "raw"
            target.mkdir(parents=True, exist_ok=True)
            for name, path in found.items():
                _stage(path, target / name)
            return self.cache_dir
        return None

    def missing_message(self) -> str:
        searched = "\n".join(f"  - {p}" for p in self.candidate_folders())
        names = ", ".join(n for part in self.spec.files(self.split).values() for n in part)
        ways = [
            f"put the IDX files ({names}, optionally .gz) into one of those folders, or point dataset.root at "
            "a folder that holds them",
            "or set dataset.download=true to let torchvision download them (needs network access)",
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
        root = self.locate()
        if root is None:
            if not self.download:
                raise FileNotFoundError(self.missing_message())
            root = self.root
        parts = {}
        for part in ("train", "test"):
            ds = self._torchvision(root, part == "train", download=self.download and root == self.root)
            x = ds.data.reshape(len(ds.data), -1)  # uint8 pixels; batches are standardized as they are drawn
            y = ds.targets[:, 0] if ds.targets.ndim == 2 else ds.targets  # QMNIST: column 0 is the class
            if self.name == "emnist" and self.split == "letters":
                y = y - 1  # letters are labelled 1..26
            parts[part] = (x, y.to(torch.int64))
        train, val = split_off(*parts["train"], self.val_fraction, self.seed)
        return {"train": train, "val": val, "test": parts["test"]}


def _stage(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (decompressing .gz/.xz) unless it is already there."""
    if target.exists():
        return
    tmp = target.with_suffix(".partial")
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(source.suffix, open)
    with opener(source, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.replace(target)
