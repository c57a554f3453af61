# Multi-stage build: a static mdbridge binary in a distroless image that
# runs as a non-root user, with the state directory as a volume.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mdbridge ./cmd/mdbridge \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/mdsim ./cmd/mdsim \
 && mkdir -p /out/state && chmod 0700 /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mdbridge /usr/local/bin/mdbridge
COPY --from=build /out/mdsim /usr/local/bin/mdsim
COPY --from=build --chown=65532:65532 /out/state /var/lib/mdbridge
COPY configs/example.yaml /etc/mdbridge/config.yaml
USER 65532:65532
VOLUME ["/var/lib/mdbridge"]
ENV MDBRIDGE_STATE__PATH=/var/lib/mdbridge/mdbridge.db
ENTRYPOINT ["/usr/local/bin/mdbridge"]
CMD ["run", "-c", "/etc/mdbridge/config.yaml"]
