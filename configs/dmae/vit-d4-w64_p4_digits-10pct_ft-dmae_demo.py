# Fine-tune the student encoder pre-trained with DMAE
# (dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py), converted with
#   python tools/model_converters/mae_distill_to_vit.py IN.pth OUT.pth \
#       --no-final-norm --out-type avg_featmap
_base_ = ['./vit-d4-w64_p4_digits-10pct_scratch_demo.py']
pretrained = 'work_dirs/mae_distill_demo/vit-d4-w64_dmae.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                                         prefix='backbone.')))
