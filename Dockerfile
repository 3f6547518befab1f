# The Pillion image: `docker build -t pillion .`
# A slim Python base, the wheel built in a first stage, a non-root user, and
# `pillion` as the entrypoint (the injector adds `run -c ...` or `webhook ...`).
FROM python:3.11-slim AS build
# gcc builds the compiled hot path (mypyc, see setup.py); the final image has no compiler.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 1337 --no-create-home --shell /usr/sbin/nologin pillion
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 1337:1337
EXPOSE 15000 15001 15006 15020 8443
ENTRYPOINT ["pillion"]
CMD ["--help"]
