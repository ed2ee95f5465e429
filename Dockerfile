# The one image every pipeline step (and later the model server) runs in.
#
# Build and push with a pinned tag, then compile the pipelines against it:
#   docker build -t ghcr.io/tabular-mlops/tabular-mlops:0.1.0 .
#   python compile.py --image ghcr.io/tabular-mlops/tabular-mlops:0.1.0
#
# Kubeflow Pipelines sets each step's command itself, so there is no ENTRYPOINT.
# The working directory is the project root: configs refer to files such as
# schemas/features_v2.json relative to it.
#
# The base image is pinned by digest (a tag moves when it is rebuilt); to move it, see the README
# ("Locked dependencies").
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

LABEL org.opencontainers.image.source="https://github.com/tabular-mlops/tabular-mlops" \
      org.opencontainers.image.description="tabular-mlops: Kubeflow Pipelines steps and model serving for tabular models" \
      org.opencontainers.image.licenses="Apache-2.0"

# MLOPS_LOCK_FILE: the lock this image was installed from; its sha256 is recorded on every registered model
# version (the package is installed, not run from the source tree, so it cannot find the file by itself).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLOPS_LOCK_FILE=/opt/mlops/requirements.lock

# Unprivileged runtime user with a home directory for library caches (MLflow, matplotlib, ...).
# The KFP v2 launcher stages artifacts under /gcs, /minio and /s3 inside the step's container: without
# these folders writable by the user, a non-root step fails with "mkdir /minio: permission denied".
RUN groupadd --gid 10001 mlops \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/mlops --shell /usr/sbin/nologin mlops \
 && mkdir -p /gcs /minio /s3 \
 && chown 10001:10001 /gcs /minio /s3

WORKDIR /opt/mlops

# Exactly the locked versions, each checked against its hash (a layer of its own: it changes only with the lock).
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

# One COPY per directory: a COPY with several directory sources would merge their contents.
COPY pyproject.toml README.md compile.py ./
COPY components ./components
COPY pipelines ./pipelines
COPY mlops ./mlops
COPY serving ./serving
COPY configs ./configs
COPY schemas ./schemas

# The project itself, a regular (non-editable) install over the locked dependencies (the lock carries the
# cloud extra and the build backend); pip check fails the build if the lock misses a requirement.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && pip check \
 && rm -rf build ./*.egg-info

# Numeric user, so that runAsNonRoot can be verified by the kubelet.
USER 10001:10001

# model server: HTTP and Prometheus metrics (`mlops serve`)
EXPOSE 8080 9090

CMD ["mlops", "--help"]
