# G2SD specific distillation for semantic segmentation (Huang et al., CVPR 2023), shapes
# demo. As in the official G2SD_seg_dis code (run.sh: weight=3, tau=1), the prediction
# distillation is channel-wise distillation (Shu et al., ICCV 2021) of the UperNet
# decode head's logits (`decode_head.conv_seg`, before upsampling):
#   3 * tau^2 / (N * C) * sum_{n,c} KL(softmax_hw(z_T[n,c] / tau) || softmax_hw(z_S[n,c] / tau))
# with tau = 1, plus the student's own losses; no warm-up. (The official loss is the cross
# entropy -sum p_T log p_S; it differs from this KL by the teacher's entropy, a constant,
# so the gradients are the same.) Teacher: upernet_vit-d8-w128_p4_mln_shapes_demo.py (MAE
# init, trained first); student: upernet_vit-d4-w64_p4_mln_shapes_demo.py (G2SD generic
# init), same schedule as the student alone.
_base_ = ['./upernet_vit-d4-w64_p4_mln_shapes_demo.py']

teacher_ckpt = 'work_dirs/g2sd_dense_demo/teacher_seg/iter_500.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    # pretrained=True: keep the student's init_cfg (the G2SD generic-stage backbone)
    architecture=dict(cfg_path='mmkd::g2sd/upernet_vit-d4-w64_p4_mln_shapes_demo.py',
                      pretrained=True),
    teacher=dict(cfg_path='mmkd::g2sd/upernet_vit-d8-w128_p4_mln_shapes_demo.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg')),
        distill_losses=dict(loss_cwd=dict(type='ChannelWiseDivergence', tau=1.0, loss_weight=3.0)),
        loss_forward_mappings=dict(
            loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
