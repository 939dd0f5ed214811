"""The demo lifecycle: a drifting source table and the whole promotion workflow through Airflow."""
