"""What runs inside a Batch job, never in the scheduler: the S3 bootstrap and the callback runner."""
