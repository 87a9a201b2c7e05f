"""Background work: RQ jobs, the timer sweep, nightly aggregation, digests, and the `sipas` CLI."""
