"""Training: labelled data, the corpus presets, the Ray-free loop, Ray Train (DDP) and Ray Tune, evaluation."""
