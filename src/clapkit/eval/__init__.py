"""The zero-shot benchmark: task registry (``tasks``), metrics with bootstrap intervals (``metrics``),
test data through the dataset adapters (``data``), cached audio embeddings (``cache``), the runner
and the report. ``clapkit eval`` is the command (``main``)."""
