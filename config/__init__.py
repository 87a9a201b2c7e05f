"""Settings and shipped defaults (flows, agencies). Imports nothing else of ours."""
