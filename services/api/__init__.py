"""The API service: enqueues workflows with DBOSClient, lists them with progress, reports metrics."""
