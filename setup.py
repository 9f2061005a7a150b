"""Install ppdet-hambox. Paddle is an extra: ``[cpu]`` or ``[gpu]``."""
from setuptools import find_packages, setup

setup(
    name='ppdet-hambox',
    version='0.1.0',
    description='HAMBox (CVPR 2020) face detection in PaddlePaddle',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Operating System :: OS Independent',
        'Intended Audience :: Science/Research',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
    python_requires='>=3.9',
    packages=find_packages(include=['ppdet_hambox', 'ppdet_hambox.*']),
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'pyyaml',
        'scipy',
        'visualdl',
        'tqdm',
        'matplotlib',
        'pycocotools',
        'pillow',
    ],
    extras_require={
        'cpu': ['paddlepaddle>=3.0'],
        'gpu': ['paddlepaddle-gpu>=3.0'],
        'demo': ['scikit-image'],
        'onnx': ['paddle2onnx>=2.1', 'onnxruntime', 'ml_dtypes'],   # ml_dtypes: onnxruntime.quantization
        'serve': ['fastapi', 'uvicorn', 'psutil'],
        'dev': ['pytest', 'scikit-image', 'paddle2onnx>=2.1', 'onnxruntime', 'ml_dtypes', 'fastapi', 'uvicorn', 'psutil', 'httpx'],
    },
)
