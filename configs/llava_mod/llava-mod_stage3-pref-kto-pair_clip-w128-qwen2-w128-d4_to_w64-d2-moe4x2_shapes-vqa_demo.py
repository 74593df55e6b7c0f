# Stage 3 with the official script's preference loss, KTO-pair (LOSS_TYPE='kto_pair',
# beta 0.1), instead of the paper's DPO.
_base_ = ['./llava-mod_stage3-pref-dpo_clip-w128-qwen2-w128-d4_to_w64-d2-moe4x2_shapes-vqa_demo.py']
model = dict(preference_loss=dict(_delete_=True, type='KTOPairLoss', beta=0.1))
