# ACAM-KD on COCO, the paper's Faster R-CNN R101 -> R50 setting: one ACAMKDLoss per
# FPN level (P2-P6), M=6, and the "inheriting strategy": the student's neck, RPN head
# and RoI head start from the teacher's (as FGD's init_student for this pair; every
# tensor has the same shape). Needs COCO under data/coco.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501
levels = 5
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    init_student_from_teacher=['neck', 'rpn_head', 'roi_head'],
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
