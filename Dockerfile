# syntax=docker/dockerfile:1
# One image for every Vigil service; docker-compose.yml picks the service with the command:
#   vigil run --only ingest|streams|api|scheduler     one service per container
#   vigil migrate                                     applies the database schema, then exits
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/vigil
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
# (With no package directories present this installs the dependencies and an empty "vigil".)
COPY pyproject.toml ./
RUN /opt/vigil/bin/pip install . \
    && rm -rf build *.egg-info

# Then the project itself.
COPY . .
RUN /opt/vigil/bin/pip install --no-deps --force-reinstall . \
    && /opt/vigil/bin/vigil --help > /dev/null

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Vigil: telemetry in, alerts and pre-filled claims out" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/vigil/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIGIL_STATE_DIR=/app/.vigil

# A fixed, unprivileged uid; /app/.vigil (state and Faust table data) is created here so that a
# named volume mounted on it starts out owned by that user.
RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin vigil \
    && mkdir -p /app/.vigil \
    && chown -R vigil:vigil /app

COPY --from=build /opt/vigil /opt/vigil

WORKDIR /app
USER vigil:vigil
EXPOSE 8080

ENTRYPOINT ["vigil"]
CMD ["run"]
