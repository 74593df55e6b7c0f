# Channel-wise distillation (Shu et al., ICCV 2021) on segmentation logits: each class
# channel of the decode head's logits is a distribution over pixels (tau=4, weight 3
# as in the paper's Cityscapes setting). Same input size, so the logits align.
_base_ = ['../task_models/fcn_r18-w16_shapes_demo.py']

teacher_ckpt = 'work_dirs/shapes/fcn_r18_shapes_demo.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmkd::task_models/fcn_r18-w16_shapes_demo.py'),
    teacher=dict(cfg_path='mmkd::task_models/fcn_r18_shapes_demo.py'),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        distill_losses=dict(loss_cwd=dict(type='ChannelWiseDivergence', tau=4.0, loss_weight=3.0)),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
