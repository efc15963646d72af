# One image for every faceatlas role: API server, workers, one-off commands.
#   docker build -t faceatlas .   docker run --rm faceatlas --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 FACEATLAS_HOME=/data

# dlib-bin and opencv-python-headless are prebuilt wheels: no compiler needed
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --create-home --uid 1000 faceatlas \
    && mkdir -p /data && chown faceatlas:faceatlas /data

# a non-root user (Celery also warns against root); /data is the shared FACEATLAS_HOME
USER faceatlas
VOLUME ["/data"]
ENTRYPOINT ["faceatlas"]
CMD ["--help"]
