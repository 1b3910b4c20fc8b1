"""Pure ML library: sequences, the recurrent model, training, evaluation, baselines."""
