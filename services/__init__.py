"""dbos-queue-worker: an API that enqueues durable DBOS workflows and a worker fleet that runs them."""
