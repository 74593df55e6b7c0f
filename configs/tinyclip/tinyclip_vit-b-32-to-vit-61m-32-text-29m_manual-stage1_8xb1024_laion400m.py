# TinyCLIP, manual weight inheritance, stage 1 of 2 (paper: ViT-B/32 -> 75% -> 50%):
# teacher open_clip ViT-B-32 (LAION-2B, laion2b_e16), student TinyCLIP ViT-61M/32
# Text-29M: image tower width 768 -> 640 (12 layers, 10 heads of 64), text tower
# 12 -> 9 layers (width 512), initialised from the teacher's front slices and
# layers 0..8 (step 12 // 9 = 1). Affinity mimicking only (alpha = 1), both logit
# scales fixed at 50 (TinyCLIP's --logit-scale 50). 6 epochs of LAION-400M.
#
# 1) teacher weights (open_clip downloads them once):
#    python tools/model_converters/tinyclip_inherit.py convert-open-clip ViT-B-32 laion2b_e16 \
#        checkpoints/open_clip_vit-b-32_laion2b_e16.pth
# 2) the inherited student (source: this config's teacher):
#    python tools/model_converters/tinyclip_inherit.py manual CONFIG \
#        checkpoints/open_clip_vit-b-32_laion2b_e16.pth CONFIG \
#        work_dirs/tinyclip_manual_stage1/inherited_from_vit-b-32.pth --src-part teacher
# 3) bash tools/dist_train.sh CONFIG 8
_base_ = [
    '../_base_/datasets/laion400m_captions_imagenet_zeroshot.py',
    '../_base_/schedules/tinyclip_8xb1024.py', '../_base_/default_runtime.py'
]
teacher_ckpt = 'checkpoints/open_clip_vit-b-32_laion2b_e16.pth'
inherited_ckpt = 'work_dirs/tinyclip_manual_stage1/inherited_from_vit-b-32.pth'
# open_clip's ViT-B-32 model config (the teacher; the automatic-inheritance students
# start from it)
vit_b_32 = dict(
    embed_dim=512,
    vision_cfg=dict(image_size=224, layers=12, width=768, patch_size=32, head_width=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12))
# open_clip model config of the student (TinyCLIP-ViT-61M-32-Text-29M.json)
student_clip = dict(
    embed_dim=512,
    vision_cfg=dict(image_size=224, layers=12, width=640, patch_size=32, head_width=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=9))
model = dict(
    type='SingleTeacherDistill',
    architecture=dict(
        _scope_='mmkd',
        type='OpenCLIPModel',
        model_cfg=student_clip,
        tokenizer={{_base_.tokenizer}},
        zero_shot={{_base_.zero_shot}},
        data_preprocessor={{_base_.data_preprocessor}},
        contrastive_weight=0.0,
        fixed_logit_scale=50.0,
        init_checkpoint=inherited_ckpt),
    teacher=dict(_scope_='mmkd', type='OpenCLIPModel', model_name='ViT-B-32',
                 data_preprocessor={{_base_.data_preprocessor}}),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            img=dict(type='ModuleOutputs', source='image_tap'),
            text=dict(type='ModuleOutputs', source='text_tap')),
        teacher_recorders=dict(
            img=dict(type='ModuleOutputs', source='image_tap'),
            text=dict(type='ModuleOutputs', source='text_tap')),
        distill_losses=dict(
            loss_affinity=dict(type='AffinityMimickingLoss', alpha=1.0, student_logit_scale=50.0,
                               teacher_logit_scale=50.0)),
        loss_forward_mappings=dict(
            loss_affinity=dict(
                img_S=dict(from_student=True, recorder='img'),
                text_S=dict(from_student=True, recorder='text'),
                img_T=dict(from_student=False, recorder='img'),
                text_T=dict(from_student=False, recorder='text')))))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3),
                     logger=dict(interval=100))
log_processor = dict(by_epoch=False)
