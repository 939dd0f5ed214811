"""The monitoring view: what the project records about each model, as a page inside Airflow's UI
and as a terminal table (`python -m monitoring status`).

It only reads: the alias ledger, monitor checks and validation records in the ledger database, the
gateway's prediction log and labels, the registry (through `registry/`), pending approvals and
Airflow's REST API. `import monitoring` loads nothing heavy; the Airflow plugin imports the rest
inside its handlers.
"""
