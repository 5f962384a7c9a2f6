#!/usr/bin/env bash
# Start, stop or describe the two local ClickHouse servers the tests use: Debian's
# clickhouse-server (installed with apt when missing), run as the current user on
# loopback ports, each with its own config and data under $BURNRATE_CH_DIR, both
# configured as the two-shard cluster `burnrate_test` (no Keeper, so no ON CLUSTER).
#
#   scripts/clickhouse.sh start   install if needed, start both, wait for SELECT 1
#   scripts/clickhouse.sh env     print the store URLs (eval it or read it)
#   scripts/clickhouse.sh stop    stop both and remove their data
set -euo pipefail

dir=${BURNRATE_CH_DIR:-${TMPDIR:-/tmp}/burnrate-clickhouse}
# HTTP and TCP (native, used between the shards) ports of shard 1 and shard 2.
http1=${BURNRATE_CH_HTTP1:-18123}
http2=${BURNRATE_CH_HTTP2:-18124}
tcp1=${BURNRATE_CH_TCP1:-19000}
tcp2=${BURNRATE_CH_TCP2:-19001}

server_bin() {
  for b in /usr/bin/clickhouse-server /usr/sbin/clickhouse-server; do
    [ -x "$b" ] && { echo "$b"; return; }
  done
  command -v clickhouse-server || true
}

install() {
  [ -n "$(server_bin)" ] && return
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clickhouse-server
}

# config <n> <http> <tcp>: a minimal server config naming both shards.
config() {
  local n=$1 http=$2 tcp=$3 d="$dir/s$1"
  mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/log"
  cp /etc/clickhouse-server/users.xml "$d/users.xml"
  cat >"$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/error.log</errorlog><size>10M</size><count>1</count></logger>
    <http_port>$http</http_port>
    <tcp_port>$tcp</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>30</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <remote_servers>
        <burnrate_test>
            <shard><replica><host>127.0.0.1</host><port>$tcp1</port></replica></shard>
            <shard><replica><host>127.0.0.1</host><port>$tcp2</port></replica></shard>
        </burnrate_test>
    </remote_servers>
</yandex>
XML
}

# Whether the server on HTTP port $1 answers SELECT 1 (curl, or bash's /dev/tcp without it).
up() {
  if command -v curl >/dev/null; then
    [ "$(curl -fsS "http://127.0.0.1:$1/?query=SELECT%201" 2>/dev/null)" = 1 ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
      printf 'GET /?query=SELECT%%201 HTTP/1.0\r\n\r\n' >&3 &&
      tail -n 1 <&3 | grep -qx 1) 2>/dev/null
  fi
}

start() {
  install
  local bin
  bin=$(server_bin)
  stop_servers
  rm -rf "$dir"
  config 1 "$http1" "$tcp1"
  config 2 "$http2" "$tcp2"
  for n in 1 2; do
    # `cd` apart from the background command, so $! is the server's pid (not a subshell's).
    (cd "$dir/s$n"
     nohup "$bin" --config-file="$dir/s$n/config.xml" >"$dir/s$n/log/stdout.log" 2>&1 &
     echo $! >"$dir/s$n/pid")
  done
  for port in "$http1" "$http2"; do
    for _ in $(seq 1 300); do
      up "$port" && break
      sleep 0.1
    done
    up "$port" || { echo "clickhouse on port $port did not start; see $dir/s*/log" >&2; exit 1; }
  done
  echo "clickhouse: shards on http ports $http1 and $http2 (cluster burnrate_test), data in $dir" >&2
}

stop_servers() {
  for n in 1 2; do
    local f="$dir/s$n/pid"
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

env_lines() {
  echo "export BURNRATE_CH_URL=clickhouse://127.0.0.1:$http1/{db}"
  echo "export BURNRATE_CH_CLUSTER_URL='clickhouse://127.0.0.1:$http1/{db}?cluster=burnrate_test&shards=127.0.0.1:$http1;127.0.0.1:$http2'"
}

case "${1:-}" in
  start) start ;;
  stop) stop_servers; rm -rf "$dir" ;;
  env) env_lines ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
