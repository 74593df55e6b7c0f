# Large-model readiness check: the LLaVA-KD demo (CE + MDist + RDist) under mmengine's
# FlexibleRunner + FSDPStrategy, the set-up of the real-scale stage-1/2/3 configs, run
# short on CPU. Runs on GPUs (nccl) and on CPU processes (gloo):
#   bash tools/dist_train.sh configs/llava_kd/<this file> 2
# Every Qwen2 decoder layer and CLIP encoder layer of the student is its own FSDP unit;
# the teacher is held outside the module tree (not sharded, not saved). The state dict
# is gathered in full on rank 0, so tools/test.py reads the checkpoint in one process.
_base_ = ['./llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_demo.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(type='mmkd.LLMFullyShardedDataParallel',
                       wrap_layer_names=['Qwen2DecoderLayer', 'CLIPEncoderLayer'],
                       use_orig_params=True),
    state_dict_cfg='full')
max_iters = 20
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
train_dataloader = dict(batch_size=8, dataset=dict(num_images=80))
val_dataloader = dict(batch_size=16, dataset=dict(num_images=16))
test_dataloader = val_dataloader
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     logger=dict(interval=5))
