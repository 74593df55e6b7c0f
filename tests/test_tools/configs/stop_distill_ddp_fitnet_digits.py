# FitNet + logit KD on digits in 2 gloo processes, distillation stopped from iteration
# 3 on (StopDistillHook, stop_iter=2). The learnable FitNet connector ('hint') is then
# unused by the losses; DDP runs without find_unused_parameters, so the algorithm must
# still give the connector a (zero) gradient in every step, or the step after the stop
# fails with "Expected to have finished reduction in the prior iteration".
_base_ = ['./dist_equivalence_fitnet_kd_digits.py']

# A random teacher (same seed on every rank) is enough: the test is about DDP.
model = dict(teacher_ckpt=None)
custom_hooks = [dict(type='LossDumpHook'), dict(type='mmkd.StopDistillHook', stop_iter=2)]
