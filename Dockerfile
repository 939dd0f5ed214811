# The project on the official Airflow image, for docker-compose.yaml (and a Helm chart's
# `images.airflow`). The image installed Airflow and its providers under Airflow's constraints; the
# project and its pinned dependencies are added the way those constraints say one's own packages
# go in: with apache-airflow pinned to the image's version, so nothing up- or downgrades Airflow.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION
USER airflow
WORKDIR /opt/project
COPY --chown=airflow:root . .
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -e . \
 && mkdir -p /opt/airflow/auth /opt/airflow/shared
