"""dbos-queue-worker: an API that enqueues durable DBOS workflows and workers that run them."""
