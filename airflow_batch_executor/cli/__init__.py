"""``airflow aws-batch-executor …``: operator commands, registered through the provider's ``cli`` entry."""
