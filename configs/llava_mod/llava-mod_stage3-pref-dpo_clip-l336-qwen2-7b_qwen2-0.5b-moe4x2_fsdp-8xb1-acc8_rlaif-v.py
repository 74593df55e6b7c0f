# Stage 3 with the paper's DPO loss (beta 0.1) instead of the official script's KTO-pair.
_base_ = ['./llava-mod_stage3-pref-kto-pair_clip-l336-qwen2-7b_qwen2-0.5b-moe4x2_fsdp-8xb1-acc8_rlaif-v.py']
model = dict(preference_loss=dict(_delete_=True, type='DPOLoss', beta=0.1))
