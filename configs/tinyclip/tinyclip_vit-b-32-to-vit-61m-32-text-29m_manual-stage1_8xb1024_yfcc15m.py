# The manual stage-1 recipe on YFCC-15M instead of LAION-400M (same teacher, student
# and hyper-parameters; the data root is the only change). Not one of the paper's
# released runs: TinyCLIP's YFCC-15M models are ViT-39M/16 and ViT-8M/16.
# Put an img2dataset export of YFCC-15M under data/yfcc15m (train.tsv: filepath, title).
_base_ = ['./tinyclip_vit-b-32-to-vit-61m-32-text-29m_manual-stage1_8xb1024_laion400m.py']
# 6 passes over 15M pairs at 8 x 1024 per iteration
max_iters = 6 * 1831 + 1
train_dataloader = dict(dataset=dict(data_root='data/yfcc15m'))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type='CosineAnnealingLR', T_max=max_iters - 2000, by_epoch=False, begin=2000,
         end=max_iters, eta_min=0.0),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1831)
