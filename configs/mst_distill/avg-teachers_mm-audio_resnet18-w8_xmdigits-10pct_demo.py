# Average of teachers: the image-only student (10% labels, all images) distils from the
# average of the softened predictions (tau=4) of the multimodal (image+audio) teacher and
# of the cross-modal (audio) teacher. Same steps, data order and seed as the student alone.
_base_ = ['./student_resnet18-w8_xmdigits-10pct_demo.py']

mm_teacher_ckpt = 'work_dirs/mst_demo/teacher_mm_img-audio_xmdigits.pth'
cm_teacher_ckpt = 'work_dirs/mst_demo/teacher_cm_audio_xmdigits.pth'
train_dataloader = dict(dataset=dict(
    unlabelled='hide',
    pipeline=[
        dict(type='RandomCrop', crop_size=16, padding=2),  # the image only
        dict(type='mmkd.PackMultiModalInputs', keys=('img', 'audio')),
    ]))
# The student is evaluated on images alone.
val_dataloader = dict(dataset=dict(pipeline=[dict(type='mmkd.PackMultiModalInputs', keys='img')]))
test_dataloader = val_dataloader
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='MultiTeacherDistill',
    architecture={{_base_.model}},
    student_input_key='img',
    student_logits='head.fc',
    teachers=dict(
        mm=dict(model=dict(cfg_path='mmkd::mst_distill/teacher_mm_img-audio_xmdigits_demo.py'),
                ckpt=mm_teacher_ckpt, input_key=['img', 'audio']),
        audio=dict(model=dict(cfg_path='mmkd::mst_distill/teacher_cm_audio_xmdigits_demo.py'),
                   ckpt=cm_teacher_ckpt, input_key=['audio'])),
    combiner=dict(type='AverageTeachers', tau=4.0))
