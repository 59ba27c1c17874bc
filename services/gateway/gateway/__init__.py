"""The gateway: the public real-time edge (WebSocket and REST) in front of dm."""
