"""The edge: Starlette REST and WebSocket endpoints over an aiokafka producer and consumer."""
