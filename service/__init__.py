"""The plain application code: settings, the jobs that flows run (score runs, retrains,
evaluations, backtests), the model registry, reports. It wires db/ and llm_model/ and never
imports Prefect: the flows, the CLI, the backtest and the benchmarks all call it."""
