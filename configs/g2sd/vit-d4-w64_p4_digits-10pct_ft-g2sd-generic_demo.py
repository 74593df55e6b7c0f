# Fine-tune the student encoder after G2SD's generic stage only (no teacher in
# fine-tuning): same recipe as ../dmae/vit-d4-w64_p4_digits-10pct_scratch_demo.py.
_base_ = ['../dmae/vit-d4-w64_p4_digits-10pct_scratch_demo.py']
pretrained = 'work_dirs/mae_distill_demo/vit-d4-w64_g2sd.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                                         prefix='backbone.')))
