#!/bin/sh
# Prints a Kubernetes manifest of cluster/ with ${TEXTCNN_IMAGE} replaced by the image named in
# cluster/image.env (or by TEXTCNN_IMAGE from the environment, which wins). For example:
#   cluster/render.sh cluster/cronjob-score.yaml | kubectl apply -f -
#   cluster/render.sh cluster/rayjob-train.yaml | kubectl create -f -
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 MANIFEST.yaml" >&2
    exit 2
fi
if [ -z "${TEXTCNN_IMAGE:-}" ]; then
    . "$(dirname "$0")/image.env"
fi
case "$TEXTCNN_IMAGE" in
    *[!A-Za-z0-9._:/@-]*|"") echo "$0: not an image name: '$TEXTCNN_IMAGE'" >&2; exit 2 ;;
esac
sed "s|\${TEXTCNN_IMAGE}|$TEXTCNN_IMAGE|g" "$1"
