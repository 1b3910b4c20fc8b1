"""Pure ML library: sequences, the recurrent model, training, evaluation, baselines."""

import os

# TensorFlow's C++ start-up chatter would bury the CLI's output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
