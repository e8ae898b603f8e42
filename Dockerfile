# ltsoups on CPU or GPU, with Ray for the ray runner. Build: docker build -t ltsoups .   Run: docker run --rm -v $PWD/runs:/work ltsoups run
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ltsoups
COPY pyproject.toml README.md LICENSE ./
COPY ltsoups ./ltsoups
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 ".[ray]" \
    && ltsoups plugins list

WORKDIR /work
ENTRYPOINT ["ltsoups"]
CMD ["--help"]
