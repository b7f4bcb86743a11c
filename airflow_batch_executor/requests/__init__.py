"""How a workload becomes a SubmitJob request: what is read from Airflow, merged, placed, sized and named."""
