# TinyCLIP affinity mimicking without weight inheritance: the student CLIP (random
# init) learns only from the teacher's image-to-text and text-to-image affinities
# (alpha=1, as TinyCLIP's released training), 500 iterations like the baseline.
_base_ = ['./clip_vit-w32-d4_text-w64-d2_digits-shapes_scratch_demo.py']
teacher_ckpt = 'work_dirs/tinyclip_demo/teacher.pth'
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='SingleTeacherDistill',
    architecture=dict(
        _scope_='mmkd',
        type='OpenCLIPModel',
        model_cfg={{_base_.student_clip}},
        tokenizer={{_base_.tokenizer}},
        zero_shot={{_base_.zero_shot}},
        data_preprocessor={{_base_.data_preprocessor}},
        contrastive_weight=0.0),  # the hard loss enters through the loss's alpha
    teacher=dict(cfg_path='mmkd::tinyclip/clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py'),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            img=dict(type='ModuleOutputs', source='image_tap'),
            text=dict(type='ModuleOutputs', source='text_tap'),
            scale=dict(type='ModuleOutputs', source='scale_tap')),
        teacher_recorders=dict(
            img=dict(type='ModuleOutputs', source='image_tap'),
            text=dict(type='ModuleOutputs', source='text_tap'),
            scale=dict(type='ModuleOutputs', source='scale_tap')),
        distill_losses=dict(loss_affinity=dict(type='AffinityMimickingLoss', alpha=1.0)),
        loss_forward_mappings=dict(
            loss_affinity=dict(
                img_S=dict(from_student=True, recorder='img'),
                text_S=dict(from_student=True, recorder='text'),
                img_T=dict(from_student=False, recorder='img'),
                text_T=dict(from_student=False, recorder='text'),
                logit_scale_S=dict(from_student=True, recorder='scale'),
                logit_scale_T=dict(from_student=False, recorder='scale')))))
