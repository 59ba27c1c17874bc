"""dm: the dialog manager. Call state in Redis, flows, prompts, LLM turns under the SLA."""
