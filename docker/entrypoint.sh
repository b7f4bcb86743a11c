#!/bin/sh
# Entrypoint of the AWS Batch worker image (docker/Dockerfile).
#
# 1. When S3_URI is set (build arg s3_uri, or the job definition's environment),
#    sync the DAGs from S3 into the DAGs folder. Credentials come from the job
#    role (the container credentials endpoint); none are baked into the image.
# 2. exec the command given by the job (for a task:
#    python -m airflow.sdk.execution_time.execute_workload --json-string ...).
#
# The DAGs folder is AIRFLOW__CORE__DAGS_FOLDER when set (that is where Airflow
# reads from), else CONTAINER_DAG_PATH, else $AIRFLOW_HOME/dags.
#
# Exit codes: 2 no command given, 1 S3 sync failed, 127 aws CLI missing.
set -eu

log() {
    printf 'batch-entrypoint: %s\n' "$*" >&2
}

fail() {
    code=$1
    shift
    printf 'batch-entrypoint: ERROR: %s\n' "$*" >&2
    exit "$code"
}

if [ "$#" -eq 0 ]; then
    fail 2 "no command given; the job must pass the command to run (e.g. python -m airflow.sdk.execution_time.execute_workload --json-string ...)"
fi

s3_uri=${S3_URI:-}
if [ -n "$s3_uri" ]; then
    dags_folder=${AIRFLOW__CORE__DAGS_FOLDER:-${CONTAINER_DAG_PATH:-${AIRFLOW_HOME:-/opt/airflow}/dags}}

    if ! command -v aws >/dev/null 2>&1; then
        fail 127 "S3_URI is set to '$s3_uri' but the aws CLI is not on PATH ($PATH), so the DAGs cannot be synced to '$dags_folder'. Install the AWS CLI in the image (docker/Dockerfile does) or unset S3_URI to use DAGs baked into the image."
    fi

    log "syncing DAGs from $s3_uri to $dags_folder"
    # Not under `set -e`'s control: the status is turned into a clear message.
    if aws s3 sync --only-show-errors "$s3_uri" "$dags_folder"; then
        log "DAG sync done"
    else
        status=$?
        fail 1 "could not sync DAGs from '$s3_uri' to '$dags_folder' (aws s3 sync exited with $status). Likely fixes: give the job role (JobRoleArn of the job definition) s3:ListBucket on the bucket and s3:GetObject on the prefix, check that S3_URI is right (s3://bucket/prefix, bucket in a reachable region), and check that the job's subnets can reach S3 (NAT gateway, public IP or an S3 VPC endpoint)."
    fi
fi

exec "$@"
