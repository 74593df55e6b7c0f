"""The data preprocessor of :class:`~mmkd.models.algorithms.MultiGranularityDistill` (MGD-SSSS).

Qin et al., ECCV 2022, arXiv:2208.10169: a labelled batch and unlabelled batches per step.
"""
from __future__ import annotations

from mmengine.model import BaseDataPreprocessor
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class SemiSupervisedDataPreprocessor(BaseDataPreprocessor):
    """Run the student's preprocessor on a labelled batch and on unlabelled batches.

    Training batches from ``SemiSupervisedSegDataset`` are
    ``dict(labelled=dict(inputs, data_samples), unlabelled=[dict(inputs, data_samples), ...])``;
    the result is the labelled ``inputs``/``data_samples`` plus
    ``unlabelled_inputs`` (a list of (N, 3, H, W) tensors). Unlabelled data samples
    are dropped: nothing downstream reads them. Any other batch (validation, test)
    goes to the student's preprocessor unchanged.
    """

    def __init__(self, preprocessor: nn.Module) -> None:
        super().__init__()
        self.preprocessor = preprocessor

    def forward(self, data: dict, training: bool = False) -> dict:
        if not (isinstance(data, dict) and 'labelled' in data):
            return self.preprocessor(data, training)
        if 'unlabelled' not in data:
            raise KeyError("a semi-supervised batch needs 'labelled' and 'unlabelled' (use "
                           'SemiSupervisedSegDataset for train_dataloader.dataset)')
        out = dict(self.preprocessor(data['labelled'], training))
        out['unlabelled_inputs'] = [self.preprocessor(u, training)['inputs']
                                    for u in data['unlabelled']]
        return out
