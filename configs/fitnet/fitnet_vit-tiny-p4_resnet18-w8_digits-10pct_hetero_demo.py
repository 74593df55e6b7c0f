# Heterogeneous pair: a ViT teacher (tokens, 96 ch, 4x4 patch grid + cls token) and a
# CNN student (ResNet-18 w8, layer4: 64 ch at 2x2). No code change, only connectors:
# the teacher's last-layer tokens become a 96 x 4 x 4 map (TokensToMap drops the cls
# token; parameter-free, so nothing learns on the teacher side) and the student's map
# goes through a 1x1 conv to 96 channels resized to 4x4 (ConvConnector out_size).
# FitNet L2 on those, plus logit KD, in the digits 10%-label setting.
_base_ = ['../kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py']

teacher_ckpt = 'work_dirs/demo/teacher_vit-tiny-p4_digits.pth'
model = dict(
    teacher=dict(_delete_=True, cfg_path='mmkd::kd/teacher_vit-tiny-p4_digits_demo.py'),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        student_recorders=dict(stage4=dict(type='ModuleOutputs', source='backbone.layer4')),
        teacher_recorders=dict(
            logits=dict(type='ModuleOutputs', source='head.layers.head'),
            tokens=dict(type='ModuleOutputs', source='backbone.layers.3')),
        connectors=dict(
            s_map=dict(type='ConvConnector', in_channels=64, out_channels=96, out_size=4),
            t_map=dict(type='TokensToMap', in_channels=96, num_extra_tokens=1)),
        distill_losses=dict(loss_fitnet=dict(type='L2Loss', loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_fitnet=dict(
                s_feature=dict(from_student=True, recorder='stage4', connector='s_map'),
                t_feature=dict(from_student=False, recorder='tokens', connector='t_map')))))
