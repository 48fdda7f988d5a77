"""What a bus process tells its operators: structured logs without personal data,
Prometheus metrics, and OpenTelemetry traces with one span per case event."""
