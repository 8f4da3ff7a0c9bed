"""Kafka-native channels: input channel topics, links between systems, service bindings."""
