"""mmkd: knowledge distillation for the OpenMMLab stack."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    reqs = []
    with open(osp.join(osp.dirname(__file__), 'requirements', name)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


setup(
    name='mmkd',
    version=read_version(),
    description='Knowledge distillation algorithms, distillers, recorders, connectors '
    'and losses for mmengine/mmdet/mmseg/mmpretrain',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
