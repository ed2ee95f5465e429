# The one image every pipeline step (and later the model server) runs in.
#
# Build and push with a pinned tag, then compile the pipelines against it:
#   docker build -t ghcr.io/tabular-mlops/tabular-mlops:0.1.0 .
#   python compile.py --image ghcr.io/tabular-mlops/tabular-mlops:0.1.0
#
# Kubeflow Pipelines sets each step's command itself, so there is no ENTRYPOINT.
# The working directory is the project root: configs refer to files such as
# schemas/features_v2.json relative to it.
FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.source="https://github.com/tabular-mlops/tabular-mlops" \
      org.opencontainers.image.description="tabular-mlops: Kubeflow Pipelines steps and model serving for tabular models" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged runtime user with a home directory for library caches (MLflow, matplotlib, ...).
RUN groupadd --gid 10001 mlops \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/mlops --shell /usr/sbin/nologin mlops

WORKDIR /opt/mlops

# One COPY per directory: a COPY with several directory sources would merge their contents.
COPY pyproject.toml README.md compile.py ./
COPY components ./components
COPY pipelines ./pipelines
COPY mlops ./mlops
COPY serving ./serving
COPY configs ./configs
COPY schemas ./schemas

# A regular (non-editable) install; the build leftovers in the source tree are removed.
RUN pip install --no-cache-dir ".[cloud]" \
 && rm -rf build ./*.egg-info

# Numeric user, so that runAsNonRoot can be verified by the kubelet.
USER 10001:10001

# model server: HTTP and Prometheus metrics (`mlops serve`)
EXPOSE 8080 9090

CMD ["mlops", "--help"]
