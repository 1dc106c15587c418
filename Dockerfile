# batchscore on the official Airflow image: Airflow components, the Celery and Postgres providers and
# the image entrypoint come from the base; the project and its pinned dependencies from
# requirements.lock (the lock pins apache-airflow to the same version as the base image).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

USER root
# git: DVC pulls the input at a pinned revision by cloning the data repo.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
# Empty directories owned by the airflow user, so named volumes mounted there start writable.
RUN mkdir -p /opt/batchscore /opt/airflow/config /opt/airflow/auth /opt/airflow/logs \
    && chown -R airflow:0 /opt/batchscore /opt/airflow/config /opt/airflow/auth /opt/airflow/logs
USER airflow

WORKDIR /opt/batchscore
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY --chown=airflow:0 requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 pipelines/ pipelines/
RUN pip install --no-cache-dir --no-deps .

# Runtime files the tasks read: params, GX suites, DVC metadata, and the DAGs themselves.
COPY --chown=airflow:0 params.yaml dvc.yaml ./
COPY --chown=airflow:0 validation/ validation/
COPY --chown=airflow:0 dags/ dags/

ENV BATCHSCORE_PARAMS=/opt/batchscore/params.yaml \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/batchscore/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=false
WORKDIR /opt/airflow
