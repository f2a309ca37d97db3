#!/bin/sh
# One-shot setup of the artifact store, run by compose.yaml's minio-init service (the mc
# image) on every `docker compose up`: the bucket, and a key pair for MLflow so that the
# server never holds MinIO's root credentials. Safe to run again.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${MLFLOW_S3_ACCESS_KEY:?}" "${MLFLOW_S3_SECRET_KEY:?}"
bucket=${MLFLOW_BUCKET:-mlflow}

mc alias set store http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "store/$bucket"
# `user add` on an existing user only resets its secret, so a changed .env takes effect.
mc admin user add store "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
# `policy attach` fails when the policy is already attached (minio/mc#4670); that case is success.
if ! out=$(mc admin policy attach store readwrite --user "$MLFLOW_S3_ACCESS_KEY" 2>&1); then
    case $out in
        *"already in effect"*) ;;
        *)
            echo "$out" >&2
            exit 1
            ;;
    esac
fi
echo "bucket $bucket ready; MLflow writes as $MLFLOW_S3_ACCESS_KEY"
