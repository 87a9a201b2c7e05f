"""Survey definitions, conversation engine and answer understanding; no transport, queue or HTTP."""
