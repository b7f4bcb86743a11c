#!/bin/sh
# Check that a worker image runs the same Airflow and Python (major.minor)
# versions as the scheduler. Run it where the scheduler runs (or pass the
# scheduler's versions in SCHEDULER_VERSIONS).
#
# Usage:
#   scripts/check-image-versions.sh IMAGE
#
# Environment:
#   SCHEDULER_PYTHON    interpreter of the scheduler's Airflow (default: python3)
#   SCHEDULER_VERSIONS  skip SCHEDULER_PYTHON and use this "AIRFLOW PYTHON" pair,
#                       e.g. "3.3.2 3.11" (from kubectl exec ... on a remote scheduler)
#   DOCKER              container CLI (default: docker; podman works too)
#
# Exit status: 0 versions match, 1 they differ, 2 usage or execution error.
set -eu

PROBE='import sys, airflow; print(airflow.__version__, "%d.%d" % sys.version_info[:2])'

usage() {
    printf 'usage: %s IMAGE\n' "$0" >&2
    exit 2
}

die() {
    printf 'check-image-versions: ERROR: %s\n' "$*" >&2
    exit 2
}

[ "$#" -eq 1 ] || usage
image=$1
[ -n "$image" ] || usage

if [ -n "${SCHEDULER_VERSIONS:-}" ]; then
    scheduler=$SCHEDULER_VERSIONS
else
    scheduler_python=${SCHEDULER_PYTHON:-python3}
    scheduler=$("$scheduler_python" -c "$PROBE") \
        || die "could not import airflow with '$scheduler_python'; set SCHEDULER_PYTHON to the scheduler's interpreter"
fi

docker_cli=${DOCKER:-docker}
# --entrypoint python: skip the image's entrypoint (and its S3 DAG sync).
worker=$("$docker_cli" run --rm --entrypoint python "$image" -c "$PROBE") \
    || die "could not run '$image' with $docker_cli (is it pulled / are you logged in to the registry?)"

printf 'scheduler: airflow %s, python %s\n' "${scheduler% *}" "${scheduler#* }"
printf 'image:     airflow %s, python %s\n' "${worker% *}" "${worker#* }"

if [ "$scheduler" = "$worker" ]; then
    echo "OK: $image matches the scheduler"
    exit 0
fi
echo "MISMATCH: rebuild $image with --build-arg AIRFLOW_VERSION=${scheduler% *} --build-arg PYTHON_VERSION=${scheduler#* }" >&2
exit 1
