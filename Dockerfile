# The Pillion image: `docker build -t pillion .`
# A slim Python base, the wheel built in a first stage, a non-root user, and
# `pillion` as the entrypoint (the injector adds `run -c ...` or `webhook ...`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
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
