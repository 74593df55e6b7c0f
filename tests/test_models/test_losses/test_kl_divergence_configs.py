"""The shipped configs that use ``KLDivergence`` keep their numbers (issue 17).

``'batchmean'`` now divides by the batch size N (PyTorch, MMRazor), where mmkd used to
average over the N*H*W rows of dense logits. The two agree on (N, C) logits. Each config
whose distiller has a ``KLDivergence`` term (found through its ``_base_`` chain, so new
configs are picked up) is built with random weights and run for one loss-mode forward;
the logits reaching the loss are checked to be (N, C), or the reduction to be the
explicit per-pixel ``'pixelmean'``, and the loss value is compared with the old
convention (the per-distribution KL averaged over all rows) computed here.
"""
import glob
import os.path as osp
import re
import warnings

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _uses_kl(path, seen=None):
    seen = set() if seen is None else seen
    if path in seen or not osp.isfile(path):
        return False
    seen.add(path)
    text = open(path, encoding='utf-8').read()
    if 'KLDivergence' in text:
        return True
    bases = re.search(r'_base_\s*=\s*(\[[^\]]*\]|[\'"][^\'"]+[\'"])', text)
    if not bases:
        return False
    for base in re.findall(r'[\'"]([^\'"]+\.py)[\'"]', bases.group(1)):
        if '::' not in base and _uses_kl(osp.normpath(osp.join(osp.dirname(path), base)), seen):
            return True
    return False


KL_CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs/*/*.py'))
                    if _uses_kl(p))


def test_kl_configs_found():
    names = {osp.basename(c) for c in KL_CONFIGS}
    assert 'kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py' in names
    assert 'g2sd-specific-soft_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py' in names


def _old_row_mean_kl(s, t, tau):
    """The pre-change value: per-distribution KL, averaged over every row (pixel)."""
    c = s.shape[1]
    s_rows = s.double().movedim(1, -1).reshape(-1, c) / tau
    t_rows = t.double().movedim(1, -1).reshape(-1, c) / tau
    log_q, log_p = torch.log_softmax(s_rows, 1), torch.log_softmax(t_rows, 1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean() * tau**2


@pytest.mark.parametrize('config', KL_CONFIGS, ids=lambda c: osp.splitext(osp.basename(c))[0])
def test_kl_config_numbers_unchanged(config):
    from mmengine.config import Config
    from mmpretrain.structures import DataSample

    from mmkd.models.losses import KLDivergence
    from mmkd.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    losses = (model_cfg.get('distiller') or {}).get('distill_losses') or {}
    if not any(str(v.get('type', '')).split('.')[-1] == 'KLDivergence' for v in losses.values()):
        pytest.skip('a base config has KLDivergence, this one replaces it')
    model_cfg['teacher_ckpt'] = None  # random weights: no download
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(model_cfg)
    kl_losses = {n: m for n, m in model.named_modules() if isinstance(m, KLDivergence)}
    assert kl_losses, f'{config} declares KLDivergence but none was built'
    seen = {}

    def hook(name):
        def fn(module, args, kwargs, output):
            s = kwargs.get('preds_S', args[0] if args else None)
            t = kwargs.get('preds_T', args[1] if len(args) > 1 else None)
            seen[name] = (module, s.detach(), t.detach(), output.detach())
        return fn
    for name, module in kl_losses.items():
        module.register_forward_hook(hook(name), with_kwargs=True)

    num_classes = next(m.num_classes for m in model.modules()
                       if isinstance(getattr(m, 'num_classes', None), int))
    g = torch.Generator().manual_seed(0)
    size = 16 if 'digits' in config else 32  # the digits demos train on 16x16 images
    batch = dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                         for _ in range(2)],
                 data_samples=[DataSample(metainfo=dict(num_classes=num_classes)).set_gt_label(i)
                               for i in range(2)])
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # training=False: no batch augments (mixup), the loss inputs keep their shapes
        model(**model.data_preprocessor(batch, False), mode='loss')
    assert set(seen) == set(kl_losses), f'{config}: a KLDivergence term did not run'
    for name, (module, s, t, out) in seen.items():
        assert s.dim() == 2 or module.reduction == 'pixelmean', (
            f'{config}: {name} gets dense logits {tuple(s.shape)} with reduction='
            f"{module.reduction!r}; set reduction='pixelmean' to keep the per-pixel mean")
        assert module.reduction in ('batchmean', 'pixelmean'), (config, name, module.reduction)
        expected = module.loss_weight * _old_row_mean_kl(s, t, module.tau)
        assert out.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7), (config, name)
