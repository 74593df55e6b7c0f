# TinyCLIP with manual weight inheritance: the student starts from front slices of
# the teacher (image tower width 64 -> 32, text tower layers 0 and 2 of 4), made by
#   python tools/model_converters/tinyclip_inherit.py manual \
#       configs/tinyclip/clip_vit-w64-d4_text-w64-d4_digits-shapes_demo.py \
#       work_dirs/tinyclip_demo/teacher.pth \
#       configs/tinyclip/clip_vit-w32-d4_text-w64-d2_digits-shapes_scratch_demo.py \
#       work_dirs/tinyclip_demo/student_inherited.pth
# then distils with affinity mimicking exactly as the config without inheritance.
_base_ = ['./tinyclip_vit-w64-to-w32_digits-shapes_demo.py']
model = dict(architecture=dict(init_checkpoint='work_dirs/tinyclip_demo/student_inherited.pth'))
