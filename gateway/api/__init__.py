"""The HTTP and WebSocket API of the platform (``csp serve``): FastAPI on the SDK, Kafka and ClickHouse.

``create_app(config, platform)`` builds one app; everything it holds (metrics registry,
rate-limit buckets, WebSocket hub, access store) lives on that app, never in globals.
"""
