"""The API service: enqueues workflows with DBOSClient, lists their progress, reports metrics."""
