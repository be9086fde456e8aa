# groupshare in a container: one image with both binaries.
#   docker build -t groupshare .        (docker-compose.yml builds it too)

# Build on Debian 12 with the same packages and script as a bare machine.
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN BUILD_TESTING=OFF scripts/setup.sh && cp build/bin/tracker build/bin/client build/bin/relay /usr/local/bin/

# Run on a slim Debian 12 with only the binaries' shared libraries.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libc-ares2 libgrpc++1.51 libgrpc29 libprotobuf32 libre2-9 \
      libreadline8 libsqlite3-0 libpq5 libssl3 libstdc++6 libicu72 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/groupshare groupshare \
 && mkdir -p /data && chown groupshare:groupshare /data
COPY --from=build /usr/local/bin/tracker /usr/local/bin/client /usr/local/bin/relay \
     /usr/local/bin/
COPY deploy/ /etc/groupshare/
USER groupshare
ENV HOME=/home/groupshare
WORKDIR /data
VOLUME /data
# A service's command names a binary; see docker-compose.yml.
CMD ["client", "--help"]
