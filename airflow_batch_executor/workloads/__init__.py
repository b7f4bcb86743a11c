"""How a job gets its workload: in its command or as an S3 object, written, refreshed and removed."""
