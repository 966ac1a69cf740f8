"""The data SSL training reads: data sets from :mod:`core.datasets`, two-view batches from here.

Finding images on disk (Tiny COCO, the notebook's layout, plain folders) lives in
:mod:`core.datasets`; it is re-exported here for older imports. What is SSL-specific - the
two-view torch dataset and its collate function - is in :mod:`core.ssl.two_views`.
"""

from __future__ import annotations

from core.datasets import DatasetInfo, ImageRecord, find_dataset, sibling_split
from core.ssl.two_views import TwoViewDataset, collate_views

__all__ = [
    "DatasetInfo",
    "ImageRecord",
    "TwoViewDataset",
    "collate_views",
    "find_dataset",
    "sibling_split",
]
