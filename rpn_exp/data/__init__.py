"""Lightning data modules over preloaded tensors."""

from .base import TensorBatches, TensorDataModule
from .digits import DigitsDataModule
from .vision import SPECS as VISION_DATASETS
from .vision import DatasetError, VisionDataModule

__all__ = ["DatasetError", "TensorBatches", "TensorDataModule", "DigitsDataModule", "VisionDataModule",
           "VISION_DATASETS"]
