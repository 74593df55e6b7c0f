# G2SD specific distillation (classification) on digits: the G2SD-generic student encoder
# as a DeiT (class + distillation token) fine-tuned with
#   0.5 * CE(class-token logits, label) + 0.5 * CE(dist-token logits, argmax teacher logits)
# (G2SD: (loss_gt + loss_dis) / 2, hard teacher labels); prediction = mean of both heads.
# The teacher is the MAE teacher fine-tuned on the same 10% labels
# (vit-d8-w128_p4_digits-10pct_ft-mae_demo.py). Here the unlabelled 90% of the training
# images stay in (label -100, ignored by CE) and get only the teacher's labels.
# Same steps, schedule and seed as the other fine-tuning runs.
_base_ = ['./deit-d4-w64_p4_digits-10pct_ft-g2sd-generic_demo.py']
teacher_ckpt = 'work_dirs/mae_distill_demo/teacher_vit-d8-w128_ft.pth'
unlabelled = 'hide'
train_dataloader = dict(dataset=dict(unlabelled=unlabelled))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        data_preprocessor={{_base_.model.data_preprocessor}},
        backbone={{_base_.model.backbone}},
        neck=None,
        head=dict(
            type='mmkd.DistillTokenClsHead', num_classes=10, in_channels=64, inference='mean',
            loss=dict(type='CrossEntropyLoss', loss_weight=0.5),
            init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)])),
    teacher=dict(cfg_path='mmkd::g2sd/vit-d8-w128_p4_digits-10pct_ft-mae_demo.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            dist_logits=dict(type='ModuleOutputs', source='head.layers.head_dist')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='head.fc')),
        distill_losses=dict(loss_hard=dict(type='HardDistillationLoss', loss_weight=0.5)),
        loss_forward_mappings=dict(
            loss_hard=dict(
                preds_S=dict(from_student=True, recorder='dist_logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
