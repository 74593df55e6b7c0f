# G2SD generic distillation (Huang et al., CVPR 2023) on digits: the tiny student MAE
# (encoder depth 4 width 64, decoder depth 2 width 32) has no pixel loss; a predictor MLP
# (32 -> 64 -> 64, GELU) on its last decoder block regresses the layer-normalised hidden
# states of the teacher decoder's block 2 of 4 (index 1, half way like 4 of 8 in the paper)
# for all 17 tokens, smooth-L1 with beta 2. Both see the same 4 of 16 patches; the teacher
# stops after that decoder block, the student after its last decoder block.
# Same images, steps, schedule and seed as the plain-MAE baseline.
_base_ = [
    '../_base_/datasets/digits_mae.py', '../_base_/schedules/digits_mae.py',
    '../_base_/models/mae_vit-d4-w64_p4_digits.py'
]
teacher_ckpt = 'work_dirs/mae_distill_demo/teacher_mae_vit-d8-w128_digits.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MaskedImageDistill',
    architecture={{_base_.model}},
    teacher=dict(cfg_path='mmkd::_base_/models/mae_vit-d8-w128_p4_digits.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    mask_ratio=0.75,
    teacher_early_exit=True,  # stops after neck.decoder_blocks.1 (of 4)
    student_early_exit=True,  # stops after its last decoder block: no norm/pixel head
    calculate_student_loss=False,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(dec=dict(type='ModuleOutputs', source='neck.decoder_blocks.1')),
        teacher_recorders=dict(dec=dict(type='ModuleOutputs', source='neck.decoder_blocks.1')),
        connectors=dict(predictor=dict(type='MLPConnector', in_features=32,
                                       hidden_features=64, out_features=64)),
        distill_losses=dict(loss_g2sd=dict(type='LayerNormSmoothL1Loss', beta=2.0,
                                           loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_g2sd=dict(
                s_feature=dict(from_student=True, recorder='dec', connector='predictor'),
                t_feature=dict(from_student=False, recorder='dec')))))
# the student's decoder_norm/decoder_pred get no gradient (G2SD has no pixel loss)
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
