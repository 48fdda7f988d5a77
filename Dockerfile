# syntax=docker/dockerfile:1
# The Ketenbus image: one image for every service (router, tracker, console) and the
# one-shot topic set-up; the compose file picks the module per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 ketenbus \
 && useradd --system --uid 10001 --gid ketenbus --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin ketenbus

# Install the project from a bind mount of the build context: the source tree never
# becomes an image layer, and no copy of `services/` in the working directory can
# shadow the installed package for `python -m services.<name>`.
RUN --mount=type=bind,target=/tmp/src,rw \
    cd /tmp/src && pip install --no-cache-dir .

# The registry example and the migrations are read from the repository layout,
# relative to the working directory: deploy/agencies.yaml, deploy/migrations.
WORKDIR /app
COPY deploy ./deploy

# Local state (KETENBUS_DATA_DIR, default ./.ketenbus) is the only writable place.
RUN mkdir .ketenbus && chown ketenbus:ketenbus .ketenbus

USER 10001:10001

CMD ["ketenbus", "--help"]
