"""Batch scoring: the input plan, the CPU and model stages, the run contract on storage, drift, ad-hoc predict."""
