"""The model server: HTTP predictions (:8080), Prometheus metrics (:9090), Parquet inference log.

Never imports kfp: it runs from the same image as the pipeline steps, as the `model-server` container.
"""
