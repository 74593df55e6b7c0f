# Logit KD (Hinton et al., 2015) in the few-label setting: the student sees every
# training image; the teacher's soft labels supervise all of them, ground-truth
# labels only the 10% labelled ones (the others carry label -100, which the
# student's cross-entropy ignores). Same steps, data order and seed as the baseline.
_base_ = ['./student_resnet18-w8_digits-10pct_demo.py']

teacher_ckpt = 'work_dirs/demo/teacher_resnet18-w32_digits.pth'
train_dataloader = dict(dataset=dict(unlabelled='hide'))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture={{_base_.model}},
    teacher=dict(cfg_path='mmkd::kd/teacher_resnet18-w32_digits_demo.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=dict(type='ModuleOutputs', source='head.fc')),
        teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='head.fc')),
        distill_losses=dict(loss_kd=dict(type='KLDivergence', tau=4.0, loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_kd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits')))))
