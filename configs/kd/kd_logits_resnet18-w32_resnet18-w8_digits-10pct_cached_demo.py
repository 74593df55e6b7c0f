# The digits logit-KD demo trained from cached teacher outputs: build the cache once,
#   python tools/cache_teacher.py configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_cached_demo.py \
#       --out work_dirs/cache/kd_digits --cfg-options train_dataloader.dataset.cache_dir=None
# then train with this config: no teacher forward runs during training. The wrapper
# replays each sample's random crop (4 stored draws per image) so the stored logits
# match what the student sees. With cache_dir=None the same config runs the teacher
# online on identically replayed data (the reference of the equivalence test).
_base_ = ['./kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py']

teacher_cache_dir = 'work_dirs/cache/kd_digits'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmkd.CachedTeacherDataset',
        dataset={{_base_.train_dataloader.dataset}},
        cache_dir=teacher_cache_dir,
        draws=4,
        seed=0))
