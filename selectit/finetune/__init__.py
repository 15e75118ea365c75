"""Fine-tuning variants of one base model on the selection and on baselines of the same size."""
