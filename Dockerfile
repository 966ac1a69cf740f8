# image-to-text in a container: both apps, one image (docs/deploy.md).
#   docker build -t image-to-text .                                   # CPU (torch's CPU wheels)
#   docker build -t image-to-text:cuda --build-arg TORCH_INDEX=cu130 .  # CUDA 13.0 torch wheels
#   docker run -p 7860:7860 -v hf-cache:/data/hf image-to-text gradio      # http://localhost:7860
#   docker run -p 7860:7860 -v hf-cache:/data/hf image-to-text streamlit   # the Streamlit app, same port
#   docker run --gpus all -p 7860:7860 -v hf-cache:/data/hf image-to-text:cuda gradio
# Settings are the apps' environment variables (docs/apps.md), e.g. -e IMG2TEXT_MODEL=... -e IMG2TEXT_MCP=1;
# an index or model folder comes in as a volume: -v $PWD/index:/data/index -e IMG2TEXT_INDEX=/data/index.
# Any image with python3 (3.10+) and its venv module: the official slim image by default.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# cpu: torch's CPU-only wheels (about 1 GB smaller); cu130 (or another CUDA tag): that CUDA build;
# pypi: whatever PyPI serves (CUDA on Linux x86_64).
ARG TORCH_INDEX=cpu
# Behind a TLS-inspecting proxy or with a local package mirror: the CA bundle pip must trust and
# extra index URLs (space-separated), e.g. --volume /etc/ssl/certs:/host-certs:ro
# --build-arg PIP_CERT_FILE=/host-certs/ca-certificates.crt. Empty: pip's defaults.
ARG PIP_CERT_FILE=""
ARG PIP_EXTRA_INDEXES=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/data/hf GRADIO_ANALYTICS_ENABLED=False \
    IMG2TEXT_HOST=0.0.0.0 IMG2TEXT_PORT=7860

RUN useradd --create-home --uid 1000 app && mkdir -p /data/hf && chown -R app /data
WORKDIR /opt/image-to-text
COPY pyproject.toml README.md ./
COPY core ./core
COPY gradio_app ./gradio_app
COPY streamlit_app ./streamlit_app
COPY docker/entrypoint.sh /usr/local/bin/image-to-text
RUN python3 -m venv /opt/venv \
    && if [ -n "$PIP_CERT_FILE" ]; then export PIP_CERT="$PIP_CERT_FILE"; fi \
    && if [ -n "$PIP_EXTRA_INDEXES" ]; then export PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEXES"; fi \
    && if [ "$TORCH_INDEX" != "pypi" ]; then \
        pip install "torch>=2.14.1" "torchvision>=0.29.1" --index-url "https://download.pytorch.org/whl/${TORCH_INDEX}"; \
    fi \
    && pip install ".[gradio,streamlit]" \
    && chmod 755 /usr/local/bin/image-to-text

USER app
# The Hugging Face cache (downloaded models, compiled int8 kernels) outlives the container.
VOLUME ["/data/hf"]
EXPOSE 7860
# Both apps answer 200 on / once they serve (the model may still be loading: the page says so).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('IMG2TEXT_PORT', '7860'), timeout=4)"
ENTRYPOINT ["image-to-text"]
CMD ["gradio"]
