# Large-model readiness check: the dense-to-sparse mimic stage of the demo under
# mmengine's FlexibleRunner + FSDPStrategy (the set-up of the real-scale configs,
# ../_base_/schedules/llava_fsdp_readiness.py), short. Runs on GPUs (nccl) and on CPU
# processes (gloo):
#   bash tools/dist_train.sh configs/llava_mod/<this file> 2
_base_ = ['./llava-mod_stage2-d2s-mimic_clip-w128-qwen2-w128-d4_to_w64-d2-moe4x2_shapes-vqa_demo.py',
          '../_base_/schedules/llava_fsdp_readiness.py']
model = dict(student_ckpt=None)   # self-contained: upcycles a freshly built dense student
max_iters = {{_base_.fsdp_check_iters}}
param_scheduler = {{_base_.fsdp_check_param_scheduler}}
train_dataloader = {{_base_.fsdp_check_train_dataloader}}
val_dataloader = {{_base_.fsdp_check_val_dataloader}}
test_dataloader = val_dataloader
train_cfg = {{_base_.fsdp_check_train_cfg}}
default_hooks = {{_base_.fsdp_check_default_hooks}}
