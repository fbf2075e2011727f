"""medprep-train: the PyTorch trainer bundled with medprep (see docs/trainer.md)."""

__version__ = "0.1.0"

from .dataset import MedprepDataset, MedprepIndex, make_fold_datasets

__all__ = ["MedprepDataset", "MedprepIndex", "make_fold_datasets"]
