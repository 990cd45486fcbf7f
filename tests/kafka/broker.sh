#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker and controller in one) on loopback, for the
# tests and for trying the pipeline on Kafka locally. Java 17+ and Maven are needed; the broker's
# jars come from Maven Central once, into a cache folder.
#
#   tests/kafka/broker.sh fetch                  download the jars (done by start if needed)
#   tests/kafka/broker.sh start [dir] [port]     start a broker in dir (default .kafka/), print
#                                                its bootstrap address; data and broker.log stay
#                                                in dir, so start again restarts the same broker
#   tests/kafka/broker.sh stop [dir]             stop it
#   tests/kafka/broker.sh kill [dir]             kill it (SIGKILL: a crash, no clean shutdown)
#
# Env: KAFKA_VERSION (default 4.4.0), BSS_KAFKA_CACHE (default ~/.cache/bss-streams).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${KAFKA_VERSION:-4.4.0}"
cache="${BSS_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bss-streams}/kafka-$version"

fetch() {
  if [ -f "$cache/libs/.complete" ]; then return; fi
  command -v java >/dev/null || { echo "Java 17+ is needed to run the Kafka broker" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "Maven is needed to fetch the Kafka broker" >&2; exit 1; }
  mkdir -p "$cache/libs"
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$version" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$cache/libs" >&2
  touch "$cache/libs/.complete"
}

free_port() {
  # A port the OS hands out for port 0 is free right now.
  java_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) \
    || java_port=$((20000 + RANDOM % 20000))
  echo "$java_port"
}

start() {
  local dir="${1:-.kafka}" port="${2:-}"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/broker.pid" ] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
    echo "bootstrap=$(cat "$dir/bootstrap")"
    return
  fi
  if [ ! -f "$dir/server.properties" ]; then
    port="${port:-$(free_port)}"
    local controller
    controller="$(free_port)"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
# One node: new groups need not wait for more members to join.
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
PROPS
    cat >"$dir/log4j2.properties" <<PROPS
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
PROPS
    echo "127.0.0.1:$port" >"$dir/bootstrap"
    java -cp "$cache/libs/*" kafka.tools.StorageTool format -c "$dir/server.properties" \
      -t "$(java -cp "$cache/libs/*" kafka.tools.StorageTool random-uuid)" >"$dir/format.log" 2>&1
  fi
  local bootstrap
  bootstrap="$(cat "$dir/bootstrap")"
  nohup java -Xms256m -Xmx512m -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$cache/libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/broker.pid"
  local marker="Kafka Server started"
  for _ in $(seq 1 600); do
    if grep -q "$marker" "$dir/broker.log" 2>/dev/null && [ "$(grep -c "$marker" "$dir/broker.log")" -gt "$(cat "$dir/starts" 2>/dev/null || echo 0)" ]; then
      grep -c "$marker" "$dir/broker.log" >"$dir/starts"
      echo "bootstrap=$bootstrap"
      return
    fi
    if ! kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
      echo "the Kafka broker exited; its log: $dir/broker.log" >&2
      tail -n 30 "$dir/stdout.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "the Kafka broker did not start within 60 s; its log: $dir/broker.log" >&2
  exit 1
}

stop() {
  local dir="${1:-.kafka}"
  [ -f "$dir/broker.pid" ] || return 0
  local pid
  pid="$(cat "$dir/broker.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/broker.pid"; return; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/broker.pid"
}

crash() {
  local dir="${1:-.kafka}"
  [ -f "$dir/broker.pid" ] || return 0
  local pid
  pid="$(cat "$dir/broker.pid")"
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$dir/broker.pid"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  kill) shift; crash "$@" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
