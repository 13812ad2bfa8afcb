# The metering scripts as a container image, for the hourly Container Apps job
# (templates/2-metering-job.bicep; README, "Running every hour: a Container Apps job").
#   az acr build -r <registry> -t metering:1 .
# Node 24 runs the .mts scripts directly (type stripping); only the runtime dependencies are
# installed. The job's command is `node scripts/2-emit-meter.mts` with its arguments.
FROM node:24-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

COPY lib/ lib/
COPY scripts/ scripts/
COPY templates/ templates/

# The image's own user (uid 1000 in node images), never root; its home holds the data directory.
RUN mkdir -p /home/node/metering-data && chown node:node /home/node/metering-data
USER node
ENV METERING_DATA_DIR=/home/node/metering-data

CMD ["node", "scripts/2-emit-meter.mts", "--help"]
