"""One bus process: the runner with /healthz and /metrics, an HTTP server beside it,
the clock it measures deadlines on, and its heap kept calm."""
