"""dm benchmarks: added latency per turn, saturated turns/s, the SLA under a stalling LLM."""
