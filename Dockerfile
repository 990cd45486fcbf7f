# The pipeline as a container:
#   docker build -t bss-streams . && docker run -p 8080:8080 -v bss-data:/app/data bss-streams
FROM denoland/deno:2.9.6

WORKDIR /app
COPY . .
# Fetch and cache every dependency at build time, so the container starts offline.
RUN deno install --entrypoint main.ts plugins/*/mod.ts \
  && mkdir -p /app/data && chown deno:deno /app/data

# State lives in a volume; the admin API listens on all interfaces inside the container.
VOLUME ["/app/data"]
ENV BSS_ADMIN_HOST=0.0.0.0 PORT=8080
EXPOSE 8080
USER deno
CMD ["task", "start"]
