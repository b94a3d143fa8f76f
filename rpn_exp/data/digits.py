"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes): needs no download."""

from __future__ import annotations

import torch

from rpn_exp.data.base import TensorDataModule, split_off


class DigitsDataModule(TensorDataModule):
    """Digits as 64 features in [0, 16], split into train/val/test with a seeded stratified split."""

    name = "digits"
    num_features = 64
    grid = (1, 8, 8, 1)
    num_classes = 10

    def __init__(self, batch_size: int = 64, eval_batch_size: int = 1024, seed: int = 0, val_fraction: float = 0.1,
                 test_fraction: float = 0.2):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def load(self):
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.data, dtype=torch.float32)
        y = torch.tensor(data.target, dtype=torch.int64)
        rest, test = split_off(x, y, self.test_fraction, self.seed)
        train, val = split_off(*rest, self.val_fraction / (1 - self.test_fraction), self.seed + 1)
        return {"train": train, "val": val, "test": test}
