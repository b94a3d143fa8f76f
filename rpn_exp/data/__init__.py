"""Lightning data modules over preloaded tensors."""

from rpn_exp.data.base import TensorBatches, TensorDataModule
from rpn_exp.data.digits import DigitsDataModule
from rpn_exp.data.vision import SPECS as VISION_DATASETS
from rpn_exp.data.vision import DatasetError, VisionDataModule

__all__ = ["DatasetError", "TensorBatches", "TensorDataModule", "DigitsDataModule", "VisionDataModule",
           "VISION_DATASETS"]
