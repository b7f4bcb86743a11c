"""Where the executor meets Airflow: version shims apart from the adapter that acts on Airflow."""
