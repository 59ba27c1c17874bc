"""voicectl: run the local stack, talk to it as a caller, check and draw flows."""
