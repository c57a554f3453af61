# rsyslog from Debian, as the SIEM's syslog receiver in docker-compose.yml.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends rsyslog \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/log/mdbridge
VOLUME ["/var/log/mdbridge"]
EXPOSE 514/tcp 6514/tcp
# -n: stay in the foreground; the config comes from the bind mount.
CMD ["rsyslogd", "-n", "-f", "/etc/rsyslog.conf"]
