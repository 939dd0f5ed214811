"""Pure decisions of the promotion workflow: plain data in, a verdict with its reasons out.

Nothing here talks to MLflow, Airflow, Slack or a database, and nothing reads the clock or the
environment, so every decision is unit-testable and replayable from its recorded inputs.
"""
