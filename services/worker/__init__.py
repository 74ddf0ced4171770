"""The worker service: launches DBOS, dequeues workflows from the shared queue and runs them."""
