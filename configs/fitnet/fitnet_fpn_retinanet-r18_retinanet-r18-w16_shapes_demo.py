# FitNet-style FPN feature mimicking for detection: every FPN level of the student
# (32 ch) goes through its own 1x1 conv regressor to the teacher's width (64 ch) and
# mimics the teacher's level with an L2 loss. Student and teacher see the same
# 128x128 shapes images, so the FPN levels have equal spatial sizes.
# Weight 0.05 per level: at weight 1 the hint losses (P7 alone ~6) made the gradient
# norm ~180 against ~2 for the detection losses, the detector's clip_grad(35) then
# scaled the detection gradient down ~5x and the student lost 4 mAP (README).
_base_ = ['../task_models/retinanet_r18-w16_fpn_shapes_demo.py']

teacher_ckpt = 'work_dirs/shapes/retinanet_r18_fpn_shapes_demo.pth'
levels = 5
loss_weight = 0.05
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmkd::task_models/retinanet_r18-w16_fpn_shapes_demo.py'),
    teacher=dict(cfg_path='mmkd::task_models/retinanet_r18_fpn_shapes_demo.py'),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        connectors={
            f'hint_p{i + 3}': dict(type='ConvConnector', in_channels=32, out_channels=64)
            for i in range(levels)
        },
        distill_losses={
            f'loss_fpn_p{i + 3}': dict(type='L2Loss', loss_weight=loss_weight)
            for i in range(levels)
        },
        loss_forward_mappings={
            f'loss_fpn_p{i + 3}': dict(
                s_feature=dict(from_student=True, recorder='fpn', data_idx=i,
                               connector=f'hint_p{i + 3}'),
                t_feature=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(levels)
        }))
