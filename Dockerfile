# The herd image: PostgreSQL 18 (Debian's official postgres image) + Node 24 + the built packages.
# Every pod of the chart runs it; the entrypoint is the bot, as the unprivileged `postgres` user
# (uid 999, which the chart's securityContext also asks for).
#
#   docker build -t herd:0.1.0 .
#
# Not built in CI: the project's machines have no container engine (see charts/herd/README.md).

FROM node:24-bookworm-slim AS node

# --- build: compile the TypeScript, then keep only the production dependencies -------------------
FROM node AS build
RUN npm install -g pnpm@12.21.0
WORKDIR /opt/herd
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/coordinator/package.json packages/coordinator/
COPY packages/worker-bot/package.json packages/worker-bot/
RUN pnpm install --frozen-lockfile
COPY packages packages
RUN pnpm build \
 && rm -rf node_modules packages/*/node_modules packages/*/src packages/*/tsconfig.tsbuildinfo \
 && pnpm install --frozen-lockfile --prod

# --- shell guard: the coordinator PostgreSQL's C extension, against the image's own server headers
FROM postgres:18-bookworm AS guard
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev "postgresql-server-dev-${PG_MAJOR}" \
 && rm -rf /var/lib/apt/lists/*
COPY packages/worker-bot/shell-guard /opt/shell-guard
RUN HERD_PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" HERD_SHELL_GUARD_REQUIRED=1 \
    bash /opt/shell-guard/build.sh

# --- runtime -------------------------------------------------------------------------------------
FROM postgres:18-bookworm
COPY --from=guard /opt/shell-guard/build/herd_shell_guard.so /usr/lib/postgresql/18/lib/
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=build /opt/herd /opt/herd
RUN mkdir -p /var/lib/herd && chown postgres:postgres /var/lib/herd
# the image's own PostgreSQL 18, not the npm package's copy
ENV HERD_PG_BIN=/usr/lib/postgresql/18/bin \
    HERD_SHELL_GUARD=herd_shell_guard \
    HERD_DATA_DIR=/var/lib/herd \
    NODE_ENV=production
USER postgres
WORKDIR /var/lib/herd
EXPOSE 5432 6480
ENTRYPOINT ["node", "/opt/herd/packages/worker-bot/dist/cli/main.js"]
CMD ["bot"]
