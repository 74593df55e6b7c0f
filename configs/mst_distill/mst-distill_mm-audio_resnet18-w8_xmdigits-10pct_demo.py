# MST-Distill on the cross-modal digits demo. Teachers: the multimodal (image+audio) and
# the cross-modal (audio) teacher, each with MaskNets on 'fusion' and 'fc1' -> 4
# specialised teachers. Stages in one run (MSTStageHook):
#   cotrain  (200 it): student + KD from each frozen teacher (official stage 1, student side)
#   masknet  (100 it): only the MaskNets learn: KL(student || masked teacher), tau=4;
#                      the MaskNets of lowest val loss go on to the next stage
#   student  (400 it): student CE + routed KD (GateNet on student logits, top-1, tau=4)
#                      + load balancing (KL to uniform), w_kl = w_lb = 1
# The student is updated in 600 iterations, as in the other demo runs.
_base_ = ['./avg-teachers_mm-audio_resnet18-w8_xmdigits-10pct_demo.py']

stages = [('cotrain', 200), ('masknet', 100), ('student', 400)]
max_iters = 700
model = dict(
    teachers=dict(
        mm=dict(masknets=[
            dict(layer='fusion', type='MaskNet1d', feat_dim=128, num_heads=3),
            dict(layer='fc1', type='MaskNet1d', feat_dim=64, num_heads=3),
        ]),
        audio=dict(masknets=[
            dict(layer='fusion', type='MaskNet1d', feat_dim=64, num_heads=3),
            dict(layer='fc1', type='MaskNet1d', feat_dim=64, num_heads=3),
        ])),
    combiner=dict(_delete_=True, type='MSTRouter', num_classes=10, topk=1, tau=4.0,
                  w_kl=1.0, w_lb=1.0, lb_mode='KL'),
    stage='cotrain')
# As the official code, each stage starts with a fresh optimizer state and the student
# stage uses the MaskNets of lowest val loss, evaluated every epoch of the MaskNet stage
# (45 iterations) and at its end (MSTStageHook's defaults); the val split is read with
# both modalities for that. The behaviour before issue 17 (one optimizer state across
# the stages, the last MaskNets): fresh_optimizer_per_stage=False, keep_best_masknet=False.
masknet_val_dataloader = dict(
    batch_size=120, num_workers=0,
    dataset=dict(type='mmkd.CrossModalDigitsDataset', split='val', img_size=16,
                 pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('img', 'audio'))]),
    sampler=dict(type='DefaultSampler', shuffle=False))
custom_hooks = [dict(type='mmkd.MSTStageHook', stages=stages)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False, eta_min=1e-4)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
# In the 'student' stage the MaskNets get no gradient, in 'masknet' the student none.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
