"""The shared runtime every service stands on: settings, logging, registry,
Kafka clients, the embedded broker, topics, the store and the service runner."""
