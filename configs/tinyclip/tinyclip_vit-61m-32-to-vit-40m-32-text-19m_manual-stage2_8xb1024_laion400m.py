# TinyCLIP, manual weight inheritance, stage 2 of 2 (progressive: 75% -> 50%): the
# student TinyCLIP ViT-40M/32 Text-19M (image width 640 -> 512, 8 heads; text
# 9 -> 6 layers, i.e. layers 0, 1, ..., 5 of stage 1 with step 9 // 6 = 1) inherits
# from the stage-1 student and is distilled from the original ViT-B/32 teacher.
#
#    python tools/model_converters/tinyclip_inherit.py manual \
#        configs/tinyclip/tinyclip_vit-b-32-to-vit-61m-32-text-29m_manual-stage1_8xb1024_laion400m.py \
#        work_dirs/tinyclip_manual_stage1/iter_292969.pth CONFIG \
#        work_dirs/tinyclip_manual_stage2/inherited_from_stage1.pth
#    bash tools/dist_train.sh CONFIG 8
_base_ = ['./tinyclip_vit-b-32-to-vit-61m-32-text-29m_manual-stage1_8xb1024_laion400m.py']
inherited_ckpt = 'work_dirs/tinyclip_manual_stage2/inherited_from_stage1.pth'
# open_clip model config of TinyCLIP-40M.json (the paper's ViT-40M/32 Text-19M)
student_clip = dict(
    embed_dim=512,
    vision_cfg=dict(image_size=224, layers=12, width=512, patch_size=32, head_width=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=6))
model = dict(architecture=dict(model_cfg=student_clip, init_checkpoint=inherited_ckpt))
