"""Train: the one training loop every fine-tuning method shares, validation-driven
stopping, and the precision training runs in (measured on this machine)."""
