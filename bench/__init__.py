"""agentd benchmarks: ``python -m bench [--quick] [--only NAME,...] [--out FILE]``.

Each benchmark measures agentd against a baseline taken in the same run, reports
medians of repeated runs after a warm-up, and ends up as one JSON entry. The
model is the scripted OpenAI-compatible test server with a set latency, so the
figures describe agentd, not a model (except ``embedded_model``).
"""
