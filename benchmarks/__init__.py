"""Measurements that are not the library's job (jobs/bench.py, jobs/accuracy.py, jobs/cuda_check.py,
jobs/gpu_check.py); they import textcnn as any user does."""
