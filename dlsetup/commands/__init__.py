"""Click commands, one module per job. Each parses options, calls the library and renders."""
