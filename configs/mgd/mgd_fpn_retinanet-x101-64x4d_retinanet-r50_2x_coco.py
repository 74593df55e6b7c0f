# Masked Generative Distillation on COCO, the official RetinaNet setting (X101-64x4d
# teacher -> R50 student, spatial mask lambda=0.65, alpha=2e-5 on P3-P7). The official
# runs also initialise the student's neck and head from the teacher. Needs COCO.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth'  # noqa: E501
levels = 5
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses={
            f'loss_mgd_p{i}': dict(type='MGDLoss', student_channels=256, teacher_channels=256, alpha_mgd=2e-5, lambda_mgd=0.65)
            for i in range(levels)
        },
        loss_forward_mappings={
            f'loss_mgd_p{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(levels)
        }))
