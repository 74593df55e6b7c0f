# Large-model readiness check: the LLaVA-KD demo (CE + MDist + RDist) under mmengine's
# FlexibleRunner + FSDPStrategy, the set-up of the real-scale stage-1/2/3 configs
# (../_base_/schedules/llava_fsdp_readiness.py), run short on CPU. Runs on GPUs (nccl)
# and on CPU processes (gloo):
#   bash tools/dist_train.sh configs/llava_kd/<this file> 2
# The teacher is held outside the module tree (not sharded, not saved).
_base_ = ['./llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_demo.py',
          '../_base_/schedules/llava_fsdp_readiness.py']
max_iters = {{_base_.fsdp_check_iters}}
param_scheduler = {{_base_.fsdp_check_param_scheduler}}
train_dataloader = {{_base_.fsdp_check_train_dataloader}}
val_dataloader = {{_base_.fsdp_check_val_dataloader}}
test_dataloader = val_dataloader
train_cfg = {{_base_.fsdp_check_train_cfg}}
default_hooks = {{_base_.fsdp_check_default_hooks}}
