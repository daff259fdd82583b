# syntax=docker/dockerfile:1
# The web app (frontend/, Next.js): `npm ci` from the committed lock file, `next build`,
# then `next start` as the unprivileged `node` user. The RCA server and simulator URLs are
# read at run time (RCA_API_URL, RCA_SIM_URL), so one image serves any server.
# Build from the repository root:  docker build -f stack/web.Dockerfile -t rca-web .

# ---- dependencies, from the lock file only ---------------------------------------------------
FROM node:20.18.1-bookworm-slim AS deps
ENV NEXT_TELEMETRY_DISABLED=1
WORKDIR /app
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund

# ---- production build, then drop the dev dependencies ---------------------------------------
FROM deps AS build
COPY frontend/ ./
RUN npm run build && npm prune --omit=dev

# ---- runtime ---------------------------------------------------------------------------------
FROM node:20.18.1-bookworm-slim AS runtime
ENV NODE_ENV=production \
    NEXT_TELEMETRY_DISABLED=1 \
    PORT=3000
WORKDIR /app
COPY --from=build --chown=1000:1000 /app/package.json /app/next.config.mjs ./
COPY --from=build --chown=1000:1000 /app/node_modules ./node_modules
COPY --from=build --chown=1000:1000 /app/.next ./.next
USER 1000:1000
EXPOSE 3000
CMD ["node_modules/.bin/next", "start", "--hostname", "0.0.0.0", "--port", "3000"]
