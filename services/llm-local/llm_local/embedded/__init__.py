"""The `embedded` backend: llama.cpp in-process, several requests decoded together."""
