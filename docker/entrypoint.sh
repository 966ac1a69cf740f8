#!/bin/sh
# The container's entry point: `gradio` (default) or `streamlit`, then that app's own flags.
set -e
app="${1:-gradio}"
[ $# -gt 0 ] && shift
case "$app" in
    gradio)
        exec python -m gradio_app "$@" ;;
    streamlit)
        exec streamlit run /opt/image-to-text/streamlit_app/app.py \
            --server.address "${IMG2TEXT_HOST:-0.0.0.0}" --server.port "${IMG2TEXT_PORT:-7860}" \
            --server.headless true -- "$@" ;;
    *)
        exec "$app" "$@" ;;
esac
