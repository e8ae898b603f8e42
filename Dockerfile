# ltsoups on CPU or GPU, with Ray for the ray runner. Build and run: see docs/docker.md.
#   docker build -t ltsoups .
#   docker run --rm --gpus all --shm-size 8g -v ltsoups-cache:/cache -v "$PWD":/work ltsoups run
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ltsoups
COPY pyproject.toml README.md LICENSE ./
COPY ltsoups ./ltsoups
# PyPI's torch 2.14.1 wheel carries its own CUDA 13.0 libraries: the host needs only the NVIDIA driver (>= 580).
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 ".[ray]" \
    && ltsoups plugins list

# An unprivileged user; what pretrained backbones download (open_clip via Hugging Face, timm, torch hub) goes to
# /cache, a volume, so that it is fetched once and not into the image or the run folder.
RUN useradd --create-home --uid 1000 ltsoups && mkdir -p /cache /work && chown ltsoups:ltsoups /cache /work
ENV XDG_CACHE_HOME=/cache HF_HOME=/cache/huggingface TORCH_HOME=/cache/torch
VOLUME ["/cache"]
USER ltsoups
WORKDIR /work
ENTRYPOINT ["ltsoups"]
CMD ["--help"]
