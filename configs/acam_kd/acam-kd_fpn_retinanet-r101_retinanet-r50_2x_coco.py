# ACAM-KD on COCO, the paper's RetinaNet R101 -> R50 setting: one ACAMKDLoss per FPN
# level, M=6 selection units, alpha=lambda=1, and the "inheriting strategy" the paper
# uses to stabilise early training: the student's neck and head start from the
# teacher's (as FGD's init_student; every tensor has the same shape for this pair).
# Needs COCO under data/coco.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'  # noqa: E501
levels = 5
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    init_student_from_teacher=['neck', 'bbox_head'],
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses={
            f'loss_acam_p{i}': dict(type='ACAMKDLoss', student_channels=256, teacher_channels=256, num_masks=6)
            for i in range(levels)
        },
        loss_forward_mappings={
            f'loss_acam_p{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in range(levels)
        }))
