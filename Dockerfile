# Airflow 3.3.2 with the project's dependencies and the cart_recovery package (docker-compose.yaml).
# The base image already holds Airflow and the providers the deployment uses (fab, celery, postgres) at
# versions built to work together; the project's own libraries are added at the versions
# requirements.lock pins, with Airflow's pin repeated so pip cannot move it (Airflow's advice for
# extending the image).
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/airflow/project

COPY --chown=airflow:0 requirements.lock pyproject.toml ./
RUN grep -E '^(dbt-core|dbt-postgres|dbt-adapters|astronomer-cosmos|sendgrid|css-inline|psycopg|psycopg-binary|jinja2|pyyaml|apache-airflow-providers-(postgres|standard|common-sql))==' \
        requirements.lock > /tmp/project-requirements.txt \
    && pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/project-requirements.txt

# The project is baked in, so the image also runs where nothing is mounted (a Celery worker on another
# host); docker-compose.yaml mounts the same folders over these, so edits need no rebuild.
COPY --chown=airflow:0 plugins ./plugins
COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 include ./include
COPY --chown=airflow:0 dbt_project ./dbt_project
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q plugins
ENV PYTHONPATH=/opt/airflow/project/plugins
