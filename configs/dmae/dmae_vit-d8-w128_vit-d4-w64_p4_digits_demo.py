# DMAE (Bai et al., CVPR 2023) on digits: the tiny student MAE (depth 4, width 64) keeps
# its pixel loss and aligns its block 3 of 4 (index 2, 3/4 depth, like 9 of 12 in the
# paper), projected 64->128, with the teacher's block 6 of 8 (index 5, like 18 of 24),
# L1 on per-token L2-normalised features of the visible tokens. Both encoders see the same
# 4 of 16 patches (mask ratio 0.75); the teacher runs 6 of its 8 blocks and no decoder.
# Same images, steps, schedule and seed as the plain-MAE baseline.
_base_ = [
    '../_base_/datasets/digits_mae.py', '../_base_/schedules/digits_mae.py',
    '../_base_/models/mae_vit-d4-w64_p4_digits.py'
]
# produced by tools/demo/mae_distill_demo.py (mae_vit-d8-w128_p4_digits_demo.py)
teacher_ckpt = 'work_dirs/mae_distill_demo/teacher_mae_vit-d8-w128_digits.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MaskedImageDistill',
    architecture={{_base_.model}},
    teacher=dict(cfg_path='mmkd::_base_/models/mae_vit-d8-w128_p4_digits.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    mask_ratio=0.75,
    teacher_early_exit=True,  # the teacher stops once backbone.layers.5 is recorded
    calculate_student_loss=True,  # MAE pixel loss, logged as loss_mae
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layers.2')),
        teacher_recorders=dict(feat=dict(type='ModuleOutputs', source='backbone.layers.5')),
        connectors=dict(proj=dict(type='LinearConnector', in_features=64, out_features=128)),
        distill_losses=dict(loss_dmae=dict(type='NormalizedL1Loss', loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_dmae=dict(
                s_feature=dict(from_student=True, recorder='feat', connector='proj'),
                t_feature=dict(from_student=False, recorder='feat')))))
