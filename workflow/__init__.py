"""Task bodies of the training, promotion and rollback DAGs (the imperative shell).

DAG files import these modules inside their tasks, so pandas, scikit-learn, LightGBM and MLflow
are loaded only when a task runs, never when the DAG processor parses a file.
"""
