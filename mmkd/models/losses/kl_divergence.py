"""Logit distillation with temperature (Hinton et al., 2015)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmkd.registry import MODELS

from .utils import check_kl_reduction, check_loss_args, reduce_kl


@MODELS.register_module()
class KLDivergence(nn.Module):
    r"""KL divergence between temperature-softened teacher and student distributions.

    "Distilling the Knowledge in a Neural Network", Hinton, Vinyals, Dean, 2015.
    With the class dimension 1 of (N, C) or (N, C, H, W) logits:

    .. math::
        p^T = \mathrm{softmax}(z^T/\tau),\quad p^S = \mathrm{softmax}(z^S/\tau)\\
        k_{nc\ldots} = p^T_{nc\ldots}(\log p^T_{nc\ldots} - \log p^S_{nc\ldots}),\qquad
        L = w\,\tau^2\,\mathrm{reduce}(k)

    The :math:`\tau^2` factor keeps gradient magnitudes comparable across
    temperatures (Hinton et al., Sec. 2). For (N, C, H, W) logits every pixel is a
    distribution over the C classes. The teacher logits are a target: detached.

    ``reduction`` means what the name means in ``torch.nn.functional.kl_div``:

    * ``'batchmean'`` (default): ``sum(k) / N``, N the batch size. For (N, C)
      logits, the mean KL over the samples (Hinton's KD). For (N, C, H, W) logits
      this is the KL *summed* over the pixels of an image, averaged over images, as
      PyTorch and MMRazor compute it.
    * ``'pixelmean'``: ``sum(k) / (N H W)``, the mean KL over the N*H*W per-pixel
      distributions (the dense convention of mmkd before 'batchmean' was made
      PyTorch's; the segmentation KD habit). Equal to ``'batchmean'`` for (N, C).
    * ``'sum'``: ``sum(k)``; ``'none'``: ``w tau^2 k`` with the logits' shape.
    * ``'mean'`` is refused with an error: ``F.kl_div`` divides by ``numel``
      (N*C*H*W) for it, warns that this is not the KL and announces a change to
      ``'batchmean'``; mmkd used to treat it as ``'batchmean'``. Its current PyTorch
      value is ``'pixelmean'`` with ``loss_weight`` divided by C.

    Porting an MMRazor config: MMRazor's ``KLDivergence`` returns
    ``loss_weight * tau**2 * F.kl_div(log_softmax(S/tau, 1), softmax(T/tau, 1),
    reduction)``, i.e. with ``reduction='batchmean'`` the summed KL divided by N. The
    same ``tau``, ``loss_weight`` and ``reduction`` here give the same numbers, on
    (N, C) and on (N, C, H, W) logits alike.

    Args:
        tau (float): temperature :math:`\tau` (> 0).
        reduction (str): 'batchmean', 'pixelmean', 'sum' or 'none' (above).
        loss_weight (float): :math:`w` (>= 0).
        allow_negative_weight (bool): accept ``loss_weight < 0``.
    """

    paired_inputs = (('preds_S', 'preds_T'), )

    def __init__(self, tau: float = 1.0, reduction: str = 'batchmean', loss_weight: float = 1.0,
                 allow_negative_weight: bool = False) -> None:
        super().__init__()
        check_loss_args(self, tau=tau, loss_weight=loss_weight,
                        allow_negative_weight=allow_negative_weight)
        self.tau = tau
        self.reduction = check_kl_reduction(reduction)
        self.loss_weight = loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        """Args: preds_S (N, C[, H, W]) student logits; preds_T teacher logits, same shape."""
        if preds_S.dim() < 2:
            raise ValueError(f'KLDivergence: logits need a class dimension (dim 1), got shape '
                             f'{tuple(preds_S.shape)}')
        log_p_s = F.log_softmax(preds_S / self.tau, dim=1)
        log_p_t = F.log_softmax(preds_T.detach() / self.tau, dim=1)
        terms = log_p_t.exp() * (log_p_t - log_p_s)
        return self.loss_weight * self.tau**2 * reduce_kl(terms, self.reduction)
