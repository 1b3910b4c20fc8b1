"""The `propensity` command line and the process it runs in: terminal output, signals,
Prefect servers it starts, TensorFlow's start-up noise."""
