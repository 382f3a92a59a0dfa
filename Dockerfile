# The hosted dashboard: the app's dependencies only (no torch, no model library), serving the shipped release.
#   docker build -t matter-align .
#   docker run --rm -p 8501:8501 matter-align                       # http://localhost:8501
#   docker run --rm -p 8501:8501 -v /path/to/releases:/releases -e MATTER_ALIGN_RELEASES=/releases matter-align
#   docker run --rm -e PORT=8080 -p 8080:8080 matter-align          # platforms that choose the port via $PORT
# BASE: any Debian-like image with python3 >= 3.11 and its venv module; tests/test_image.py builds a local one
# (tests/image/make_base.sh) on machines that reach no container registry. docs/DEPLOY.md has the details.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    MATTER_ALIGN_RELEASES=/app/data/releases \
    PORT=8501 \
    PATH=/opt/venv/bin:$PATH

# A venv rather than the system interpreter: the same steps on python:3.11-slim and on Debian's python3, whose
# system site-packages are closed to pip (PEP 668).
# /app (the app user's home, where Streamlit keeps its state) is the app's; the code and the release stay root's.
RUN python3 -m venv /opt/venv \
    && groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app && chown app:app /app
WORKDIR /app

# The dependencies first, from pyproject.toml alone: their layer (most of the image) is reused until pyproject.toml
# changes, so a code or release change rebuilds in seconds. Then the package itself, without dependencies.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['app']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY precompute ./precompute
COPY backend ./backend
COPY app ./app
RUN pip install --no-deps ".[app]" \
    && pip check \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
    && rm -rf build ./*.egg-info
COPY data ./data

USER app
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request, sys; sys.exit(urllib.request.urlopen('http://localhost:%s/_stcore/health' % os.environ.get('PORT', '8501'), timeout=4).status != 200)"
# sh -c so that $PORT is read when the container starts; exec so that streamlit gets the signals.
CMD ["sh", "-c", "exec streamlit run app/main.py --server.address 0.0.0.0 --server.port \"$PORT\" --client.toolbarMode viewer"]
