# Single cross-modal teacher: the image-only student distils (KD, tau=4) from the audio
# teacher alone. Same steps, data order and seed as the student alone.
_base_ = ['./avg-teachers_mm-audio_resnet18-w8_xmdigits-10pct_demo.py']
model = dict(teachers=dict(
    _delete_=True,
    audio=dict(model=dict(cfg_path='mmkd::mst_distill/teacher_cm_audio_xmdigits_demo.py'),
               ckpt={{_base_.cm_teacher_ckpt}}, input_key=['audio'])))
