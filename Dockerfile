# The hosted dashboard: the app's dependencies only (no torch, no model library), serving the shipped release.
#   docker build -t matter-align .
#   docker run --rm -p 8501:8501 matter-align                       # http://localhost:8501
#   docker run --rm -p 8501:8501 -v /path/to/releases:/releases -e MATTER_ALIGN_RELEASES=/releases matter-align
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    MATTER_ALIGN_RELEASES=/app/data/releases

RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# Install first from the package metadata and code (cached layer), then add the release.
COPY pyproject.toml README.md ./
COPY precompute ./precompute
COPY backend ./backend
COPY app ./app
RUN pip install ".[app]" \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
COPY data ./data
RUN chown -R app:app /app

USER app
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status != 200)"
CMD ["streamlit", "run", "app/main.py", "--server.address", "0.0.0.0", "--server.port", "8501", "--client.toolbarMode", "viewer"]
