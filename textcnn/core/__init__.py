"""The model core, Ray-free: tokenizer, network, model directory, inference, export and row checks."""
