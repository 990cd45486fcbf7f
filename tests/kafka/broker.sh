#!/usr/bin/env bash
# A single-broker Apache Kafka cluster (KRaft: a controller and a broker process) on loopback, for the
# tests and for trying the pipeline on Kafka locally. Java 17+ and Maven are needed; the broker's
# jars come from Maven Central once, into a cache folder.
#
#   tests/kafka/broker.sh fetch                  download the jars (done by start if needed)
#   tests/kafka/broker.sh start [dir] [port]     start it in dir (default .kafka/), print the
#                                                broker's bootstrap address; data, broker.log and
#                                                controller.log stay in dir, so start again
#                                                restarts the same cluster
#   tests/kafka/broker.sh stop [dir]             stop broker and controller
#   tests/kafka/broker.sh kill [dir]             kill the broker (SIGKILL: a crash, no clean
#                                                shutdown) and wait until the controller fences it
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

# How many lines of file $2 hold $1 (0 for a file not there yet).
count() {
  local n
  n="$(grep -c "$1" "$2" 2>/dev/null || true)"
  echo "${n:-0}"
}

free_port() {
  # A port the OS hands out for port 0 is free right now.
  java_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) \
    || java_port=$((20000 + RANDOM % 20000))
  echo "$java_port"
}

# Runs one Java process of the node: $1 its role (controller or broker), with $dir/$1.properties,
# logging to $dir/$1.log; waits until it has started.
launch() {
  local role="$1" heap="$2"
  local log="$dir/$role.log"
  if [ -f "$dir/$role.pid" ] && kill -0 "$(cat "$dir/$role.pid")" 2>/dev/null; then return; fi
  sed "s|@LOG@|$log|" "$dir/log4j2.template" >"$dir/$role.log4j2.properties"
  nohup java -Xms128m -Xmx"$heap" -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$dir/$role.log4j2.properties" \
    -cp "$cache/libs/*" kafka.Kafka "$dir/$role.properties" >>"$dir/$role.stdout.log" 2>&1 &
  echo $! >"$dir/$role.pid"
  local marker="Kafka Server started" before
  before="$(cat "$dir/$role.starts" 2>/dev/null || echo 0)"
  for _ in $(seq 1 600); do
    if [ "$(count "$marker" "$log")" -gt "$before" ]; then
      count "$marker" "$log" >"$dir/$role.starts"
      return
    fi
    if ! kill -0 "$(cat "$dir/$role.pid")" 2>/dev/null; then
      echo "the Kafka $role exited; its log: $log" >&2
      tail -n 30 "$dir/$role.stdout.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "the Kafka $role did not start within 60 s; its log: $log" >&2
  exit 1
}

start() {
  dir="${1:-.kafka}"
  local port="${2:-}"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ ! -f "$dir/broker.properties" ]; then
    port="${port:-$(free_port)}"
    local controller
    controller="$(free_port)"
    # The controller runs apart from the broker, as in production: a broker that crashes is
    # fenced by a controller that stayed up, and comes back as a new incarnation that finishes
    # the transactions it had in flight. (A combined node restarting within its own session
    # timeout loses leadership of every partition again while it writes transaction markers,
    # skips them, and leaves those transactions' offsets pending for good.)
    cat >"$dir/controller.properties" <<PROPS
process.roles=controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=CONTROLLER://127.0.0.1:$controller
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT
log.dirs=$dir/controller-data
# A crashed broker is fenced within two seconds (default nine).
broker.session.timeout.ms=2000
PROPS
    cat >"$dir/broker.properties" <<PROPS
process.roles=broker
node.id=2
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
broker.heartbeat.interval.ms=500
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
    cat >"$dir/log4j2.template" <<PROPS
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = @LOG@
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
PROPS
    echo "127.0.0.1:$port" >"$dir/bootstrap"
    local cluster
    cluster="$(java -cp "$cache/libs/*" kafka.tools.StorageTool random-uuid)"
    for role in controller broker; do
      java -cp "$cache/libs/*" kafka.tools.StorageTool format -c "$dir/$role.properties" \
        -t "$cluster" >>"$dir/format.log" 2>&1
    done
  fi
  launch controller 256m
  launch broker 512m
  echo "bootstrap=$(cat "$dir/bootstrap")"
}

# Stops a process of the node (SIGTERM, SIGKILL after 30 s).
halt() {
  local pidfile="$1"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop() {
  local dir="${1:-.kafka}"
  halt "$dir/broker.pid"
  halt "$dir/controller.pid"
}

# Kills the broker (the controller stays up) and waits until the controller has fenced it, so
# that a start brings it back as a new incarnation.
crash() {
  local dir="${1:-.kafka}"
  [ -f "$dir/broker.pid" ] || return 0
  local pid fenced="Fencing broker 2 at epoch" before
  pid="$(cat "$dir/broker.pid")"
  before="$(count "$fenced" "$dir/controller.log")"
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$dir/broker.pid"
  for _ in $(seq 1 300); do
    [ "$(count "$fenced" "$dir/controller.log")" -gt "$before" ] && return
    sleep 0.1
  done
  echo "the Kafka controller did not fence the killed broker within 30 s: $dir/controller.log" >&2
  exit 1
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  kill) shift; crash "$@" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
