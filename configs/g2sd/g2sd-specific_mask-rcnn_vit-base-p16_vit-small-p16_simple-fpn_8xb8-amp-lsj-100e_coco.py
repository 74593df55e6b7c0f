# G2SD specific distillation for detection (Huang et al., CVPR 2023), COCO: ViTDet-B Mask
# R-CNN teacher -> ViTDet-S Mask R-CNN student (G2SD generic-stage backbone). The paper
# reports the distilled ViT-S at 98.1% of its teacher's AP. The official G2SD_det_dis
# recipe (plain_distill_net.py, mask_rcnn_vitdet_b2s_100ep.py): on each level P2-P6
#   m = max over anchors of sigmoid(teacher RPN objectness)
#   0.001 * sum m (F_T - adapt(F_S))^2 / sum m    (adapt: a 3x3 conv per level, 256 -> 256)
#   0.1   * sum m BCE(sigmoid(z_S), sigmoid(z_T)) / sum m   (RPN objectness)
# times min(1, iteration / 500), plus the student's Mask R-CNN losses; the student's
# recipe is the student-alone config's (layer decay 0.7 over the student's blocks;
# the adapters, outside the student, get the full lr).
_base_ = ['./mask-rcnn_vit-small-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py']

teacher_ckpt = 'work_dirs/mask-rcnn_vit-base-p16_simple-fpn_8xb8-amp-lsj-100e_coco/epoch_25.pth'
levels = 5
channels = 256
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(
        cfg_path='mmkd::g2sd/mask-rcnn_vit-small-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py',
        pretrained=True),
    teacher=dict(
        cfg_path='mmkd::g2sd/mask-rcnn_vit-base-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py',
        pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            fpn=dict(type='ModuleOutputs', source='neck'),
            rpn_cls=dict(type='ModuleOutputs', source='rpn_head.rpn_cls')),
        teacher_recorders=dict(
            fpn=dict(type='ModuleOutputs', source='neck'),
            rpn_cls=dict(type='ModuleOutputs', source='rpn_head.rpn_cls')),
        connectors={
            f'adapt_p{i + 2}': dict(type='ConvConnector', in_channels=channels,
                                    out_channels=channels, kernel_size=3)
            for i in range(levels)
        },
        distill_losses={
            **{f'loss_frs_feat_p{i + 2}': dict(type='FRSFeatureLoss', loss_weight=0.001)
               for i in range(levels)},
            **{f'loss_frs_cls_p{i + 2}': dict(type='FRSClsLoss', loss_weight=0.1)
               for i in range(levels)},
        },
        loss_forward_mappings={
            **{
                f'loss_frs_feat_p{i + 2}': dict(
                    s_feature=dict(from_student=True, recorder='fpn', data_idx=i,
                                   connector=f'adapt_p{i + 2}'),
                    t_feature=dict(from_student=False, recorder='fpn', data_idx=i),
                    t_logits=dict(from_student=False, recorder='rpn_cls', record_idx=i))
                for i in range(levels)
            },
            **{
                f'loss_frs_cls_p{i + 2}': dict(
                    s_logits=dict(from_student=True, recorder='rpn_cls', record_idx=i),
                    t_logits=dict(from_student=False, recorder='rpn_cls', record_idx=i))
                for i in range(levels)
            },
        }))
custom_hooks = [dict(type='mmkd.DistillLossWeightHook', warmup=500, start_factor=0.0)]
