# G2SD specific distillation for detection (Huang et al., CVPR 2023), shapes demo. As in
# the official G2SD_det_dis code (feature-richness-score distillation, Du et al. 2021), on
# every pyramid level P2-P6:
#   m = max over anchors of sigmoid(teacher RPN objectness logits)          (N, H, W)
#   feature:    w_f * sum m * (F_T - adapt(F_S))^2 / sum m       (adapt: 3x3 conv per level)
#   prediction: 0.1   * sum m * BCE(sigmoid(z_S), sigmoid(z_T)) / sum m   (RPN objectness)
# both multiplied by a linear warm-up from 0 (official: iteration / 500; here 75 iterations,
# one epoch of the 450-iteration demo), plus the student's own detection losses.
# w_f: G2SD uses 0.001 on ViTDet's LayerNorm-ed 256-channel pyramid. This demo's pyramid
# (MultiLevelNeck, no norm) gives teacher features ~100x larger: with 0.001 the feature
# term started near 3000 (gradient norm ~2e4, the task losses drowned), so w_f = 1e-6
# here, which starts it at a few units; the paper's weight is used in the COCO config.
# Teacher: faster-rcnn_vit-d8-w128_p4_mln_shapes_demo.py (MAE init, trained first);
# student: faster-rcnn_vit-d4-w64_p4_mln_shapes_demo.py (G2SD generic-stage init),
# same schedule as the student alone.
_base_ = ['./faster-rcnn_vit-d4-w64_p4_mln_shapes_demo.py']

teacher_ckpt = 'work_dirs/g2sd_dense_demo/teacher_det/epoch_12.pth'
levels = 5
channels = 64
feat_weight = 1e-6  # G2SD: 0.001 (see above)
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    # pretrained=True: keep the student's init_cfg (the G2SD generic-stage backbone)
    architecture=dict(cfg_path='mmkd::g2sd/faster-rcnn_vit-d4-w64_p4_mln_shapes_demo.py',
                      pretrained=True),
    teacher=dict(cfg_path='mmkd::g2sd/faster-rcnn_vit-d8-w128_p4_mln_shapes_demo.py',
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
            **{f'loss_frs_feat_p{i + 2}': dict(type='FRSFeatureLoss', loss_weight=feat_weight)
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
custom_hooks = [dict(type='mmkd.DistillLossWeightHook', warmup=75, start_factor=0.0)]
