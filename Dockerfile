# Airflow 3.3.2 with the project's locked dependencies and the cart_recovery package.
FROM apache/airflow:3.3.2-python3.11
USER airflow
WORKDIR /opt/airflow/project
COPY --chown=airflow requirements.lock pyproject.toml ./
COPY --chown=airflow plugins ./plugins
RUN pip install --no-cache-dir -r requirements.lock && pip install --no-cache-dir --no-deps -e .
ENV PYTHONPATH=/opt/airflow/project/plugins
