"""The feedback coach: its task definition, sentence splitting, HTTP API and web page, mounted on
the generic server by `takeoff.app`. `task` imports nothing but the standard library."""
