# G2SD specific distillation for semantic segmentation (Huang et al., CVPR 2023), ADE20K:
# UperNet MAE ViT-B/16 teacher (mmseg's MAE UperNet, 48.13 mIoU) -> UperNet ViT-S/16
# student (G2SD generic-stage backbone). The paper reports the distilled ViT-S at 99.3% of
# its teacher's mIoU. The official G2SD_seg_dis recipe (run.sh, distill_cwd.py): channel-
# wise distillation of the decode head's logits (decode_head.conv_seg, 150 channels),
# tau 1, weight 3, no warm-up, plus the student's UperNet losses; the student's recipe is
# the student-alone config's (layer decay 0.65 over the student's blocks).
_base_ = ['./upernet_vit-small-p16_mln_8xb2-160k_ade20k-512x512.py']
teacher_ckpt = 'https://download.openmmlab.com/mmsegmentation/v0.5/mae/upernet_mae-base_fp16_8x2_512x512_160k_ade20k/upernet_mae-base_fp16_8x2_512x512_160k_ade20k_20220426_174752-f92a2975.pth'  # noqa: E501
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(cfg_path='mmkd::g2sd/upernet_vit-small-p16_mln_8xb2-160k_ade20k-512x512.py',
                      pretrained=True),
    teacher=dict(cfg_path='mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
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
