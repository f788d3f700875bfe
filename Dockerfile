# One image for every stage: `tradewatch worker ingest|rules|notify|records`, or `tradewatch up`.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY schemas ./schemas
COPY services ./services
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tradewatch
WORKDIR /app
COPY --from=build /app /app
COPY config ./config
ENV PATH="/app/.venv/bin:$PATH" \
    TRADEWATCH_DATA_DIR=/app/var \
    TRADEWATCH_LOG_FORMAT=json
RUN mkdir -p /app/var && chown tradewatch /app/var
USER tradewatch
ENTRYPOINT ["tradewatch"]
CMD ["up"]
