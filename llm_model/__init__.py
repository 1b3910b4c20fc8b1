"""Pure ML library: sequences, the recurrent model, training, evaluation, baselines."""

from llm_model.tensorflow_log import quiet_tensorflow_imports

# Every module that fits or serves a network imports TensorFlow (Keras does too); whichever
# does so first, in a command, a flow run, a Dask worker or a test, loads it quietly.
quiet_tensorflow_imports()
