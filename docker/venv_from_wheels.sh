#!/bin/sh
# The deps stage of the runtime, MLflow and Feast images: /opt/venv from the build
# context's wheels. --no-index: the build needs no network; --no-deps: the lock is the
# complete set (docker/lock.sh). pip compiles bytecode here on purpose: a read-only root
# cannot cache it at run time. The test suites and C headers of the big numeric packages
# are never imported at run time (~150 MB): dropped (a package an image lacks is skipped).
# docker/wheels.sh copies this file into each context beside requirements.lock.
set -eu
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-index --no-deps --find-links /wheels/deps \
    -r /wheels/requirements.lock
cd /opt/venv/lib/python3.11/site-packages
rm -rf pandas/tests numpy/*/tests numpy/tests scipy/*/tests scipy/*/*/tests \
    sklearn/tests sklearn/*/tests pyarrow/tests matplotlib/tests dask/tests dask/*/tests \
    pyarrow/include pyarrow/src
