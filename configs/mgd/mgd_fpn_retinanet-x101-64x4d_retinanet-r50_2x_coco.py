# Masked Generative Distillation on COCO, the official RetinaNet recipe
# (yzd-v/MGD det/configs/distillers/mgd/retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py):
# RetinaNet X101-64x4d teacher (mmdet's multi-scale 3x checkpoint) -> RetinaNet R50,
# MGD with a spatial mask (lambda=0.65, alpha=2e-5) on every FPN level P3-P7, the
# student's 2x schedule (24 epochs, SGD lr 0.01 for 16 images), gradient clipping at
# max_norm 35, and `init_student`: the student's neck and head start from the
# teacher's (every non-backbone tensor, all of the same shape here). Needs COCO.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_mstrain_3x_coco/retinanet_x101_64x4d_fpn_mstrain_3x_coco_20210719_051838-022c2187.pth'  # noqa: E501
levels = 5
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=True),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_ms-640-800-3x_coco.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    # the official init_student=True: every student tensor outside `backbone.` is
    # loaded from the teacher where the shapes match (all of them for this pair)
    init_student_from_teacher=['neck', 'bbox_head'],
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
# the official optimizer_config: grad_clip=dict(max_norm=35, norm_type=2)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
