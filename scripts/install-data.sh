#!/usr/bin/env bash
# Brings in the datasets tunedp's workloads read; nothing is downloaded at run time.
# Fashion-MNIST is a Debian package; installed here when we are root and it is missing.
set -euo pipefail
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
   && [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Debian package dataset-fashion-mnist"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "note: Fashion-MNIST is missing; run 'sudo apt-get install dataset-fashion-mnist'" >&2
  fi
fi
