"""Gateway benchmarks: WebSocket load through gateway → dm, and the cost of the dm hop."""
