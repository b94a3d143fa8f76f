"""Data modules: digits splits, torchvision loaders on IDX files written here, the real Fashion-MNIST."""

import dataclasses
import gzip
from pathlib import Path

import lightning as L
import pytest
import torch

from rpn_exp.data import DatasetError, DigitsDataModule, TensorBatches, VisionDataModule
from rpn_exp.data.base import moments
from rpn_exp.data.vision import SPECS
from tests.idx import write_dataset

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_digits_split_is_seeded_stratified_and_standardized():
    dm = DigitsDataModule(seed=3)
    dm.setup()
    sizes = dm.sizes()
    assert sum(sizes.values()) == 1797 and sizes["test"] == pytest.approx(0.2 * 1797, abs=10)
    for split in ("train", "val", "test"):
        assert torch.bincount(dm.splits[split][1], minlength=10).min() > 0
        assert torch.unique(dm.splits[split][1][:40]).numel() >= 8  # classes are mixed, not in blocks
    x, _ = dm.standardized("train")
    assert x.dtype == torch.float32 and x.mean().abs() < 1e-4 and (x.std() - 1).abs() < 1e-4
    again = DigitsDataModule(seed=3)
    again.setup()
    assert torch.equal(again.splits["test"][0], dm.splits["test"][0])


def test_uint8_images_stay_uint8_and_are_standardized_per_batch():
    x = torch.randint(0, 256, (50, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = moments(x)
    assert mean == pytest.approx(x.double().mean().item()) and std == pytest.approx(x.double().std().item())
    (batch, _), = list(TensorBatches(x, torch.zeros(50), 64, mean=mean, std=std))
    assert batch.dtype == torch.float32 and torch.allclose(batch, (x.float() - mean) / std)
    assert x.dtype == torch.uint8  # the stored data is untouched


def test_batches_are_slices_with_a_seeded_shuffle():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = list(TensorBatches(x, y, 4, shuffle=True, seed=1))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    again = list(TensorBatches(x, y, 4, shuffle=True, seed=1))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    shard = list(TensorBatches(x, y, 4, rank=1, world_size=2))
    assert torch.cat([b[1] for b in shard]).tolist() == [5, 6, 7, 8, 9]


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("layout", ["torchvision", "flat_gz"])
def test_torchvision_loaders_read_idx_files(name, layout, tmp_path):
    spec = SPECS[name]
    split = "balanced" if name == "emnist" else None
    names = {part: tuple(files) for part, files in spec.files(split).items()}
    folder = tmp_path / spec.torchvision_class / "raw" if layout == "torchvision" else tmp_path / "flat"
    labels = write_dataset(folder, names, compress=layout == "flat_gz", classes=10)
    root = tmp_path if layout == "torchvision" else tmp_path / "flat"
    dm = VisionDataModule(name, root=str(root), cache_dir=str(tmp_path / "cache"), val_fraction=0.25, batch_size=16)
    dm.setup()
    x, y = dm.splits["test"]
    assert x.shape == (20, 784) and x.dtype == torch.uint8  # kept as pixels, standardized per batch
    assert torch.equal(y, torch.as_tensor(labels["test"], dtype=torch.int64))
    sizes = dm.sizes()
    assert sizes["train"] + sizes["val"] == 60 and abs(sizes["val"] - 15) <= 3  # stratified per class
    assert dm.num_features == 784 and dm.num_classes == (47 if name == "emnist" else 10)


def test_a_missing_dataset_names_the_folders_searched_and_how_to_get_it(tmp_path):
    dm = VisionDataModule("fashion_mnist", cache_dir=str(tmp_path / "cache"))
    dm.spec = dataclasses.replace(dm.spec, system_folders=(str(tmp_path / "system"),))  # as on a bare machine
    with pytest.raises(FileNotFoundError) as info:
        dm.setup()
    message = str(info.value)
    assert str(tmp_path / "cache" / "FashionMNIST" / "raw") in message and str(tmp_path / "system") in message
    assert "apt-get install dataset-fashion-mnist" in message and "download=true" in message


def test_a_root_that_does_not_exist_is_an_error_and_nothing_is_staged(tmp_path):
    dm = VisionDataModule("fashion_mnist", root=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"root=.*nowhere does not exist; give the folder"):
        dm.setup()
    assert not (tmp_path / "nowhere").exists()  # no other copy was found and staged there


def flat_mnist(tmp_path, **kwargs):
    names = {part: tuple(files) for part, files in SPECS["mnist"].files(None).items()}
    write_dataset(tmp_path / "flat", names, compress=True, **kwargs)
    return names


def test_a_truncated_idx_file_is_named_and_never_staged(tmp_path):
    names = flat_mnist(tmp_path)
    damaged = tmp_path / "flat" / f"{names['train'][0]}.gz"
    damaged.write_bytes(gzip.compress(gzip.decompress(damaged.read_bytes())[:-100]))  # 100 bytes short
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=rf"{damaged} is damaged: its header says \[60, 28, 28\]"):
        dm.setup()
    staged = tmp_path / "cache" / "MNIST" / "raw"
    assert not (staged / names["train"][0]).exists() and not list(staged.glob("*.partial"))


def test_a_damaged_staged_copy_is_replaced_from_a_good_source(tmp_path):
    names = flat_mnist(tmp_path)
    VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache")).setup()
    staged = tmp_path / "cache" / "MNIST" / "raw" / names["test"][0]
    staged.write_bytes(staged.read_bytes()[:-10])  # an earlier copy cut short
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert dm.sizes()["test"] == 20 and staged.stat().st_size == 16 + 20 * 28 * 28


def test_a_labels_file_that_counts_fewer_items_than_its_images_is_refused(tmp_path):
    import numpy as np

    from tests.idx import write_idx

    names = flat_mnist(tmp_path)
    write_idx(tmp_path / "flat" / names["train"][1], np.zeros(59, dtype=np.uint8), compress=True)
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"the train files of mnist .* disagree: 60 images but 59 labels"):
        dm.setup()


def test_a_missing_dataset_is_said_without_loading_or_staging_anything(tmp_path):
    dm = VisionDataModule("fashion_mnist", cache_dir=str(tmp_path / "cache"))
    dm.spec = dataclasses.replace(dm.spec, system_folders=(str(tmp_path / "system"),))
    assert "fashion_mnist not found. Searched:" in dm.missing()
    flat_mnist(tmp_path)
    found = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    assert found.missing() is None and not (tmp_path / "cache").exists()
    assert DigitsDataModule().missing() is None


def test_labels_outside_the_classes_are_refused(tmp_path):
    flat_mnist(tmp_path, classes=12)
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"labels of mnist .* hold 0\.\.11, outside the 10 classes 0\.\.9"):
        dm.setup()


def test_constant_images_and_a_single_class_are_refused_at_load(tmp_path):
    import numpy as np

    from tests.idx import write_idx

    names = flat_mnist(tmp_path)
    images, labels = (tmp_path / "flat" / name for name in names["train"])
    write_idx(images, np.full((60, 28, 28), 7, dtype=np.uint8), compress=True)
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"train images of mnist .* all have the same value 7 in every pixel"):
        dm.setup()
    flat_mnist(tmp_path)
    write_idx(labels, np.full(60, 3, dtype=np.uint8), compress=True)
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache2"))
    with pytest.raises(DatasetError, match=r"train images of mnist .* all have the label 3"):
        dm.setup()


def test_images_that_are_not_unsigned_bytes_are_refused_with_their_type(tmp_path):
    import struct

    names = flat_mnist(tmp_path)
    images = tmp_path / "flat" / names["train"][0]
    images.write_bytes(struct.pack(">BBBB3I", 0, 0, 0x0D, 3, 60, 28, 28) + bytes(4 * 60 * 28 * 28))  # float32
    dm = VisionDataModule("mnist", root=str(tmp_path / "flat"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"holds images of IDX type 0x0D \(32-bit floats\); MNIST-style images"):
        dm.setup()


def test_bad_dataset_arguments_list_the_valid_choices():
    with pytest.raises(ValueError, match="valid choices: .*fashion_mnist"):
        VisionDataModule("cifar")
    with pytest.raises(ValueError, match="split='nope'.*balanced"):
        VisionDataModule("emnist", split="nope")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist (installed by .ci/run)")
def test_real_fashion_mnist_trains_for_a_few_batches(tmp_path):
    from rpn_exp.functions.expansion import TaylorExpansion
    from rpn_exp.functions.reconciliation import DualLPHMReconciliation
    from rpn_exp.nn import RPNNetwork
    from rpn_exp.run.module import RPNClassifier

    L.seed_everything(0)
    dm = VisionDataModule("fashion_mnist", cache_dir=str(tmp_path / "data"), batch_size=64)
    dm.setup()
    assert dm.sizes() == {"train": 54000, "val": 6000, "test": 10000}
    net = RPNNetwork([784, 32, 10], expansion=TaylorExpansion(2, postprocess=["layer_norm"]),
                     reconciliation=DualLPHMReconciliation(r=2))
    module = RPNClassifier(net, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2))
    trainer = L.Trainer(max_epochs=1, limit_train_batches=20, limit_val_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 20 and trainer.callback_metrics["val/acc"] > 0.2  # chance is 0.1


STAGE_ONCE = """
import sys, time
from pathlib import Path
from rpn_exp.data import VisionDataModule
dm = VisionDataModule("mnist", root=sys.argv[1], cache_dir=sys.argv[2])
Path(sys.argv[3]).touch()  # imported: ready
while not Path(sys.argv[4]).exists():  # every process starts staging at the same moment
    time.sleep(0.01)
dm.setup()
print(dm.sizes()["test"])
"""


def test_processes_that_stage_the_same_dataset_at_once_all_get_it(tmp_path):
    import subprocess
    import sys
    import time

    names = flat_mnist(tmp_path, sizes=(20000, 20))  # 15.7 MB of train images: the copies overlap in time
    staged = tmp_path / "cache" / "MNIST" / "raw"
    staged.mkdir(parents=True)
    other = staged / f"{names['train'][0]}.999999.partial"  # another process's half-written copy
    other.write_bytes(b"\0\0\x08\x03")
    go = tmp_path / "go"
    jobs = [subprocess.Popen([sys.executable, "-c", STAGE_ONCE, str(tmp_path / "flat"), str(tmp_path / "cache"),
                              str(tmp_path / f"ready{i}"), str(go)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    while len(list(tmp_path.glob("ready*"))) < 4 and all(job.poll() is None for job in jobs):
        time.sleep(0.05)
    go.touch()
    outcomes = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0] * 4, [err[-2000:] for _, err in outcomes]
    assert [out.strip() for out, _ in outcomes] == ["20"] * 4
    assert other.read_bytes() == b"\0\0\x08\x03"  # not ours: left alone
    assert sorted(staged.glob("*.partial")) == [other]
