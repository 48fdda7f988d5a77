"""Kafka as every service meets it: clients configured one way, the embedded broker,
the bus's topics and ACLs, and how far each consumer group is behind."""
