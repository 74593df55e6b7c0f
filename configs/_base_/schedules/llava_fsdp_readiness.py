# Shared by the LLaVA FSDP readiness demos (configs/llava_kd, configs/llava_mod):
# mmengine's FlexibleRunner + FSDPStrategy as the real-scale configs use it, and a short
# schedule. Every Qwen2 decoder layer and CLIP encoder layer of the student is its own
# FSDP unit; the state dict is gathered in full on rank 0, so tools/test.py reads the
# checkpoint in one process. The `fsdp_check_*` entries are taken by the demos with
# `{{_base_.fsdp_check_*}}` (their own bases define these keys already).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(type='mmkd.LLMFullyShardedDataParallel',
                       wrap_layer_names=['Qwen2DecoderLayer', 'CLIPEncoderLayer'],
                       use_orig_params=True),
    state_dict_cfg='full')
fsdp_check_iters = 20
fsdp_check_param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=fsdp_check_iters)]
fsdp_check_train_dataloader = dict(batch_size=8, dataset=dict(num_images=80))
fsdp_check_val_dataloader = dict(batch_size=16, dataset=dict(num_images=16))
fsdp_check_train_cfg = dict(type='IterBasedTrainLoop', max_iters=fsdp_check_iters,
                            val_interval=fsdp_check_iters)
fsdp_check_default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=fsdp_check_iters, max_keep_ckpts=1),
    logger=dict(interval=5))
