# The auth server as a container image: built in a Rust image, run from a
# distroless one (glibc, CA certificates, no shell) as a non-root user.
# SQLite and libpq are compiled in (bundled), so nothing else is needed.
#
#   docker build -t auth-server .
#   docker run -p 8080:8080 -v auth-var:/var/lib/auth-server auth-server
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p auth-server \
 && install -D target/release/auth-server /out/auth-server \
 && mkdir -p /out/var

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/auth-server /usr/local/bin/auth-server
# The embedded defaults write under ./var: make it the image's data volume.
COPY --from=build --chown=nonroot:nonroot /out/var /var/lib/auth-server/var
WORKDIR /var/lib/auth-server
VOLUME ["/var/lib/auth-server/var"]
ENV AUTH_BIND=0.0.0.0:8080
EXPOSE 8080
USER nonroot
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["/usr/local/bin/auth-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/auth-server"]
CMD ["serve"]
