"""Training runs: named experiment presets (Exp.1-3, patch k) and the resumable, checkpointing training loop."""
